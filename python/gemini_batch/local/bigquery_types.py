"""JSON fields nested in STRUCTs and ARRAYs, as the local BigQuery reports them.

bqemulator reads a result's or a table's schema from Arrow, where DuckDB's JSON is a
plain string; it recovers JSON for top-level query columns only (from the DuckDB type
of each column). A JSON field inside a STRUCT (``AI.GENERATE(...) AS g`` has
``g.full_response JSON``) or an ARRAY came out as STRING, in query results and in the
schema of a table made by CREATE TABLE AS; BigQuery says JSON. These helpers find the
JSON fields in a DuckDB type and mark them in a BigQuery schema (``bqemulator_main``
applies them to both; in a table's schema, to nested fields only).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Path = tuple[str, ...]


def json_paths(duckdb_type: str | Any) -> list[Path]:
    """The paths (field names, from the top) of the JSON values inside ``duckdb_type``
    (a DuckDB type or its text); ``()`` when the type itself is JSON. A type DuckDB
    cannot read back has none: the schema stays as bqemulator made it."""
    import duckdb

    try:
        kind = duckdb.sqltype(duckdb_type) if isinstance(duckdb_type, str) else duckdb_type
    except duckdb.Error:
        return []
    if str(kind).upper() == "JSON":
        return [()]
    if kind.id == "list":
        return json_paths(kind.children[0][1])
    if kind.id == "struct":
        return [(name, *path) for name, child in kind.children for path in json_paths(child)]
    return []


def mark_json(fields: list[Any], paths: list[Path], *, name: Callable[[Any], str],
              children: Callable[[Any], list[Any]],
              as_json: Callable[[Any, list[Any] | None], Any]) -> list[Any]:
    """``fields`` (one level of a schema) with the fields at ``paths`` typed JSON.

    ``name``/``children`` read a field (a dict entry or a model); ``as_json(field,
    None)`` returns it typed JSON, ``as_json(field, new_children)`` with new children.
    """
    marked = []
    for field in fields:
        own = [path[1:] for path in paths if path and path[0] == name(field)]
        if not own:
            marked.append(field)
        elif () in own:
            marked.append(as_json(field, None))
        else:
            inner = mark_json(list(children(field)), own, name=name, children=children,
                              as_json=as_json)
            marked.append(as_json(field, inner))
    return marked


def mark_json_entries(entries: list[dict[str, Any]], paths: list[Path]) -> list[dict[str, Any]]:
    """REST schema entries (``{"name", "type", "mode", "fields"}``) with JSON marked."""

    def as_json(entry: dict[str, Any], inner: list[Any] | None) -> dict[str, Any]:
        return {**entry, "type": "JSON"} if inner is None else {**entry, "fields": inner}

    return mark_json(entries, paths, name=lambda entry: entry["name"],
                     children=lambda entry: entry.get("fields") or [], as_json=as_json)


__all__ = ["Path", "json_paths", "mark_json", "mark_json_entries"]
