"""What a build reports per batch model: the summary the closing table, `--json` and the
Airflow operator are drawn from, and the protocol progress goes through while jobs run.

Talks to no service and draws nothing: :mod:`gemini_batch.display` draws it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from collections.abc import Sequence

    from gemini_batch.clients.vertex import JobStatus
    from gemini_batch.state.ledger import LedgerEntry


@dataclass
class QueueCancel:
    """A job the build cancelled because it was still queued past max_queue_hours
    (build/queue_deadline.py), and what became of its requests."""

    job_id: str
    queued_hours: float
    max_queue_hours: float
    requests: int  # in its shard
    answered: int = 0  # rows it answered before the cancel landed (merged, paid for)
    # Where its unanswered requests went in this build: "batch" (a new job),
    # "ai_generate" (route auto: AI.GENERATE in the model's dbt run); None: they stay
    # pending (the build's second cancel for the queue, or --no-wait).
    resent_by: str | None = None

    def describe(self) -> str:
        """The closing note: ``job 123 was still queued after 30.0 h ...``."""
        where = {"batch": "went to a new batch job",
                 "ai_generate": "went to AI.GENERATE (route auto)"}.get(
            self.resent_by or "", "stay pending: the next `gemini-batch build` sends them")
        answered = (f", after answering {counted(self.answered, 'row')} (merged)"
                    if self.answered else "")
        return (f"job {self.job_id} was still queued after {self.queued_hours:.1f} h "
                f"(max_queue_hours {self.max_queue_hours:g}): cancelled{answered}; its "
                f"unanswered requests {where}.")


@dataclass
class ModelSummary:
    """One batch model's outcome in one build: the row of the closing table."""

    model: str  # dbt model name
    requests: int = 0  # distinct requests in <model>__requests
    cached: int = 0  # answered before this build started submitting
    # answers copied from another dataset's responses (var gemini_batch_answers_from)
    reused: int = 0
    submitted: int = 0  # requests sent in new jobs by this build
    resumed: int = 0  # requests in jobs of an earlier build this one waited on
    succeeded: int = 0  # answered by this build's (or resumed) jobs (merged so far, until
    # report() counts: what a build stopped early by Ctrl-C or a failing stage reports)
    failed: int = 0  # rows that end failed (retries used up, or invalid)
    invalid: int = 0  # subset of failed: never submitted, the request is not valid
    # A few of them: "ticket_id=17: the prompt is NULL (contents[0].parts[0].text)".
    invalid_examples: list[str] = field(default_factory=list)
    pending: int = 0  # still without an answer at the end (e.g. a job failed)
    outside_sample: int = 0  # of them, left out by --sample (var gemini_batch_sample)
    jobs: int = 0
    # Which route answered this build's requests: "ai_generate" (AI.GENERATE statements
    # in the model's dbt run), "batch" (Vertex AI batch jobs), "ai_generate+batch";
    # None: nothing was sent. From the ledger rows of what ran (took()).
    route: str | None = None
    ai_generate_statements: int = 0  # AI.GENERATE statements of its dbt run (and retries)
    # Jobs still running when the build left (--no-wait): the next build collects them.
    in_flight_jobs: list[str] = field(default_factory=list)
    job_names: list[str] = field(default_factory=list)  # every job this build handled
    failed_jobs: list[str] = field(default_factory=list)  # "job id: state: error"
    # Jobs cancelled while still queued past max_queue_hours, and where their requests went.
    queue_cancelled: list[QueueCancel] = field(default_factory=list)
    # The model's max_queue_hours (None: unset): how long the Airflow trigger lets its
    # in-flight jobs wait in the queue before the operator's next step cancels them.
    max_queue_hours: float | None = None
    # Requests that ended failed, by class of reason ("EMPTY_ANSWER: MAX_TOKENS": 3).
    failure_reasons: dict[str, int] = field(default_factory=dict)
    tokens: int = 0
    cost_usd: float = 0.0
    estimated_cost_usd: float | None = None
    wall_seconds: float = 0.0
    error: str | None = None  # why the model stopped early (budget, config, service)
    # Tests on its request column that warned (the jobs went all the same).
    warnings: list[str] = field(default_factory=list)
    # Nodes not run because a test on its request column failed (downstream of it).
    skipped: list[str] = field(default_factory=list)

    def took(self, route: str) -> None:
        """Something of this build went by ``route`` (``ai_generate`` or ``batch``)."""
        routes = {*(self.route or "").split("+"), route}
        self.route = "+".join(name for name in ROUTES if name in routes)

    def add_ai_generate(self, entries: Sequence[LedgerEntry]) -> int:
        """The ledger rows of the AI.GENERATE statements the model's dbt run in this build
        made: counted as this build's (sent, tokens, cost, jobs handled). Returns the
        requests they answered (the build counted them as cached before its jobs)."""
        answered = 0
        for entry in entries:
            self.took("ai_generate")
            self.ai_generate_statements += 1
            if entry.job_name.rsplit("/", 1)[-1].startswith("1-"):
                # The first round sends each request once; later rounds retry some.
                self.submitted += entry.request_count
            self.job_names.append(entry.job_name)
            self.tokens += entry.total_tokens or 0
            self.cost_usd += entry.actual_cost_usd or 0.0
            if entry.estimated_cost_usd is not None:
                self.estimated_cost_usd = ((self.estimated_cost_usd or 0.0)
                                           + entry.estimated_cost_usd)
            answered += entry.succeeded_count or 0
        return answered

    def interrupt(self) -> None:
        """Ctrl-C stopped the model's jobs: said as its error (the build is interrupted)."""
        self.error = INTERRUPTED_NOTE
    # Why a failed canary held back the rest of the pending requests (exit 3).
    canary_stopped: str | None = None

    @property
    def all_cached(self) -> bool:
        return self.error is None and self.submitted == 0 and self.resumed == 0


# The routes a build answers by, in the order ModelSummary.route names them.
ROUTES = ("ai_generate", "batch")

# A model's summary.error when Ctrl-C stopped its jobs (not an error: the build says so).
INTERRUPTED_NOTE = "interrupted: live jobs stay in the ledger; the next build resumes them"


def all_failed_reason(view: str, output_table: str) -> str:
    """Why a job whose every row failed ended so: the service's message sends the user
    to its output table, which the build merged and dropped; the errors are in the view."""
    return (f"every row failed; each row's error is in last_error of {view} (the output "
            f"table {output_table} was merged and dropped)")


def counted(number: int, noun: str, plural: str | None = None) -> str:
    """``1 request``, ``3 requests``, ``1,200 requests``: a count with its noun, for
    every count a command prints."""
    return f"{number:,} {noun if number == 1 else plural or noun + 's'}"


class Reporter(Protocol):
    def message(self, model: str, text: str) -> None: ...

    def job_started(
        self, model: str, job_name: str, requests: int, *, resumed: bool = False
    ) -> None: ...

    def job_update(self, model: str, status: JobStatus) -> None: ...

    def job_finished(self, model: str, status: JobStatus, note: str) -> None: ...

    def close(self) -> None: ...
