"""The one job-watching loop: what it tells, when it polls, when it stops."""

from __future__ import annotations

from dataclasses import dataclass

from gemini_batch.clients.polling import Backoff, Progress, watch_jobs


@dataclass(frozen=True)
class Status:
    name: str
    state: str
    succeeded: int = 0

    @property
    def terminal(self) -> bool:
        return self.state == "SUCCEEDED"

    @property
    def progress(self) -> Progress:
        return Progress(self.state, self.succeeded, 0)


def test_changes_are_told_once_and_a_change_starts_the_backoff_over() -> None:
    answers = {"a": iter([Status("a", "RUNNING"), Status("a", "RUNNING"),
                          Status("a", "RUNNING", 5), Status("a", "SUCCEEDED", 9)]),
               "b": iter([Status("b", "SUCCEEDED", 1)])}
    told: list[tuple[str, str, int]] = []
    waits: list[float] = []
    rounds: list[int] = []
    last = watch_jobs(["a", "b"], lambda name: next(answers[name]),
                      backoff=Backoff(1.0, 10.0, 2.0),
                      on_change=lambda n, s: told.append((n, s.state, s.succeeded)),
                      after_round=lambda: rounds.append(1), sleep=waits.append)
    assert told == [("a", "RUNNING", 0), ("b", "SUCCEEDED", 1), ("a", "RUNNING", 5),
                    ("a", "SUCCEEDED", 9)]
    assert waits == [1.0, 2.0, 1.0]  # a round without a change waits longer
    assert len(rounds) == 4
    assert {name: s.state for name, s in last.items()} == {"a": "SUCCEEDED", "b": "SUCCEEDED"}


def test_a_known_status_is_told_first_and_not_read_again() -> None:
    reads: list[str] = []

    def get(name: str) -> Status:
        reads.append(name)
        return Status(name, "SUCCEEDED")

    told: list[str] = []
    last = watch_jobs(["a"], get, backoff=Backoff(0.5, 1.0), known={"a": Status("a", "QUEUED")},
                      on_change=lambda n, s: told.append(s.state), sleep=lambda s: None)
    assert told == ["QUEUED", "SUCCEEDED"] and reads == ["a"]
    assert last["a"].state == "SUCCEEDED"


def test_jobs_are_kept_by_the_name_they_were_asked_by() -> None:
    """The service may name a job by its project number where it was asked by the id."""
    last = watch_jobs(["projects/p/j"], lambda name: Status("projects/123/j", "SUCCEEDED"),
                      backoff=Backoff(1.0, 1.0), sleep=lambda s: None)
    assert list(last) == ["projects/p/j"]


def test_a_stop_or_the_deadline_ends_the_watch_with_jobs_running() -> None:
    running = Status("a", "RUNNING")
    stopped = watch_jobs(["a"], lambda name: running, backoff=Backoff(1.0, 1.0),
                         sleep=lambda seconds: True)
    assert stopped["a"].state == "RUNNING"
    timed_out = watch_jobs(["a"], lambda name: running, backoff=Backoff(1.0, 1.0),
                           sleep=lambda seconds: None, deadline=0.0)
    assert timed_out["a"].state == "RUNNING"
