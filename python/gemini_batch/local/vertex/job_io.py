"""Where a job's requests come from and where its answers go, as the runner sees them.

The service reads a batch job's requests from a BigQuery table or from JSONL files in
Cloud Storage, and writes its answers to a table or to prediction files (table_io.py,
jsonl.py). The runner pages through a ``Source``, answers, and hands the rows to a
``Sink``'s writer; it never asks which kind either is.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from gemini_batch.local.vertex.output import OutputWriter


class Source(Protocol):
    """A job's input: rows with a ``request`` (and what passes through to the output)."""

    # How many requests it holds (counted when it is opened).
    total_rows: int
    # What a read error names: "table p.d.t", "files".
    name: str
    # The input columns an output table passes through (none for JSONL lines, which
    # carry their own fields).
    columns: list[dict[str, Any]]

    def pages(self, page_size: int) -> Iterator[list[dict[str, Any]]]:
        """The rows, a page at a time."""
        ...

    def too_many(self, limit: int) -> str:
        """Why a job over ``limit`` requests is refused, naming the input."""
        ...

    def place(self, row: dict[str, Any], number: int) -> str:
        """Where the request of ``row`` (the ``number``-th read) is, as a 400 status
        names it: a table row, a file line."""
        ...


class Sink(Protocol):
    """A job's output: a table, or a folder of prediction files."""

    # The job's ``outputInfo`` while it runs and after.
    output_info: dict[str, str]
    # Where each failed row's error can be read (for a job whose every row failed).
    errors_where: str

    def writer(self, *, page_size: int, thread_name: str) -> OutputWriter:
        """What appends answered rows, a batch at a time, in its own thread."""
        ...


__all__ = ["Sink", "Source"]
