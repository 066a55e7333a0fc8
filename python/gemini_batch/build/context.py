"""What the batch models of a build share: the build's settings (its flags) and the
per-stage context (the target's services, the lock owner, the stage's reporter, the stop
event Ctrl-C sets)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gemini_batch.build.queue_deadline import AiGenerateRun
    from gemini_batch.build.summary import Reporter
    from gemini_batch.build.workspace import Workspace
    from gemini_batch.state.ledger import LockOwner


@dataclass(frozen=True)
class BatchSettings:
    """How a build waits and what counts as failure (CLI flags)."""

    poll_initial: float = 1.0
    poll_max: float = 60.0
    # None: each model's fail_on_failed_rows config; True/False: the CLI flag wins.
    fail_on_failed_rows: bool | None = None
    # False (--no-wait): merge what ended, submit one round, leave the rest in flight.
    wait: bool = True
    defer_state: str | None = None  # --defer's state directory: answers are read there (ADR 0016)


@dataclass(frozen=True)
class BatchContext:
    """What every batch model of a stage shares: made once per build, and given each
    stage's dbt invocation and progress reporter by :meth:`for_stage` (a new context,
    sharing the build's stop event)."""

    workspace: Workspace
    owner: LockOwner
    settings: BatchSettings
    invocation_id: str
    reporter: Reporter | None = None  # set for each stage's jobs
    # A dbt run of one batch model, for route auto to answer the requests of jobs
    # cancelled for the queue through AI.GENERATE (build/queue_deadline.py); none: not
    # in this build (they go by a new job).
    ai_generate: AiGenerateRun | None = None
    stop: threading.Event = field(default_factory=threading.Event)

    def for_stage(self, invocation_id: str | None, reporter: Reporter) -> BatchContext:
        return replace(self, invocation_id=invocation_id or self.invocation_id,
                       reporter=reporter)


__all__ = ["BatchContext", "BatchSettings"]
