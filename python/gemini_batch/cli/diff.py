"""`gemini-batch diff MODEL`: each row's current answer beside its previous one."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import click
from rich.table import Table

from gemini_batch.cli.app import (
    _human_output,
    _json_option,
    _open_workspace,
    _print_table,
    _project_options,
    _reports_service_errors,
    main,
)

# Characters of an answer shown in a table cell (--json gives them whole).
_CELL = 300


@main.command("diff")
@click.argument("model_name", metavar="MODEL")
@_project_options
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True,
              help="Rows to show.")
@_json_option
@_reports_service_errors
def diff_command(model_name: str, limit: int, as_json: bool, **kwargs: Any) -> None:
    """The rows of MODEL with a current answer and an earlier one (the latest answer
    under an earlier request of the same key columns), side by side.

    Change a prompt, `gemini-batch build --sample 50`, then `gemini-batch diff MODEL`.
    """
    from gemini_batch.display import dumps
    from gemini_batch.state.history import changes

    with _human_output(as_json) as human:
        project, ws = _open_workspace(kwargs)
        model = project.find_model(model_name)
        found = changes(ws.bq, model, limit)
        if not found:
            human.print(f"{model.name}: no row has both a current and an earlier answer "
                        "(change the prompt, then `gemini-batch build --sample N`).")
        else:
            _print_table(_table(model.name, found), to=human)
            same = sum(change.same_text for change in found)
            human.print(f"{len(found)} row(s) with both answers; {len(found) - same} changed, "
                        f"{same} the same text.")
    if as_json:
        click.echo(dumps({
            "command": "diff", "model": model.name, "unique_id": model.unique_id,
            "rows": [{**dataclasses.asdict(change), "same_text": change.same_text}
                     for change in found],
        }))


def _table(name: str, found: list[Any]) -> Table:
    table = Table(title=f"gemini-batch diff {name}", title_justify="left", show_lines=True)
    for column in ("key", "previous", "current", "finish", "tokens"):
        table.add_column(column, justify="right" if column == "tokens" else "left",
                         overflow="fold")
    for change in found:
        table.add_row(
            "\n".join(f"{key}={value}" for key, value in change.key.items()) or "-",
            _shown(change.previous), _shown(change.current),
            f"{change.previous.finish_reason or '-'} → {change.current.finish_reason or '-'}",
            f"{_count(change.previous.tokens)} → {_count(change.current.tokens)}",
        )
    return table


def _shown(answer: Any) -> str:
    if answer.parsed is not None:
        text = json.dumps(answer.parsed, indent=1, ensure_ascii=False)
    else:
        text = answer.text if answer.text is not None else "(no text)"
    return text if len(text) <= _CELL else text[:_CELL] + "…"


def _count(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"
