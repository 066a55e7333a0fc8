"""When a job's answered rows go to its output table: the output writer's flush policy.

A fake table writer records each load; the loads are read after ``close``, which waits
for them, so nothing here depends on how fast the load thread runs.
"""

from __future__ import annotations

from typing import Any

import pytest

from gemini_batch.local.vertex.output import OutputWriter

Rows = list[dict[str, Any]]


class FakeTable:
    """Records the rows of every load; fails the loads numbered in ``fail``."""

    def __init__(self, fail: frozenset[int] = frozenset()) -> None:
        self.loads: list[Rows] = []
        self._fail = fail

    def load(self, rows: Rows) -> None:
        self.loads.append(rows)
        if len(self.loads) in self._fail:
            raise RuntimeError(f"load {len(self.loads)} failed")


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def answered(*ids: int, text: str = "") -> Rows:
    return [{"id": i, "response": text or None, "status": ""} for i in ids]


def ids(loads: list[Rows]) -> list[list[int]]:
    return [[row["id"] for row in load] for load in loads]


def writer(table: FakeTable, **settings: Any) -> OutputWriter:
    settings.setdefault("page_size", 1000)
    settings.setdefault("clock", FakeClock())
    return OutputWriter(table.load, **settings)


def test_rows_wait_for_a_page_then_are_loaded_together():
    table = FakeTable()
    with writer(table, page_size=3) as output:
        output.add(answered(1, 2), succeeded=2)
        output.add(answered(3, 4), succeeded=2)  # 4 rows buffered: one load
        output.add(answered(5), succeeded=1)
    # The row left in the buffer is written on close, in a load of its own.
    assert ids(table.loads) == [[1, 2, 3, 4], [5]]


def test_rows_are_loaded_once_their_text_reaches_the_byte_limit():
    table = FakeTable()
    with writer(table, max_bytes=25) as output:
        for i in range(1, 6):
            output.add(answered(i, text="x" * 10), succeeded=1)  # 10 bytes a row
    assert ids(table.loads) == [[1, 2, 3], [4, 5]]


def test_slow_rows_are_loaded_once_they_have_waited_longer_than_the_interval():
    table, clock = FakeTable(), FakeClock()
    with writer(table, max_interval=2.0, clock=clock) as output:
        output.add(answered(1), succeeded=1)
        clock.now = 2.0
        output.add(answered(2), succeeded=1)  # exactly 2 s: not yet
        clock.now = 2.5
        output.add(answered(3), succeeded=1)  # over 2 s since the writer started
        clock.now = 3.0
        output.add(answered(4), succeeded=1)  # 0.5 s since that load: waits
    assert ids(table.loads) == [[1, 2, 3], [4]]


def test_close_without_rows_loads_nothing():
    table = FakeTable()
    with writer(table):
        pass
    assert table.loads == []


def test_the_counts_are_what_completion_stats_report():
    with writer(FakeTable()) as output:
        output.add(answered(1, 2, 3), succeeded=2)
        output.add(answered(4, 5), succeeded=0)
        assert (output.succeeded, output.failed, output.rows) == (2, 3, 5)


def test_a_failed_load_surfaces_at_the_next_flush_and_stops_writing():
    table = FakeTable(fail=frozenset({1}))
    with pytest.raises(RuntimeError, match="load 1 failed"), writer(table, page_size=2) as output:
        output.add(answered(1, 2), succeeded=2)  # load 1 starts, and fails
        output.add(answered(3, 4), succeeded=2)  # waits for load 1 before starting load 2
    assert ids(table.loads) == [[1, 2]]


def test_close_waits_for_the_last_load_and_raises_its_error():
    table = FakeTable(fail=frozenset({1}))
    output = writer(table)
    output.add(answered(1), succeeded=1)
    with pytest.raises(RuntimeError, match="load 1 failed"):
        output.close()
    assert ids(table.loads) == [[1]]
