"""`gemini-batch submit`: a JSONL file of requests through one Vertex AI batch job, the
tutorial's flow (JSONL in Cloud Storage → predictions in Cloud Storage), done right.

Every line is checked before anything is paid for (``request_checks``: the checks of
``gemini_batch.request_problems``, with line numbers), the cost is estimated (``cost``),
a local input is uploaded under the output prefix, and the job is written to the submit
ledger (``submit_ledger``: a local file, or the dbt target's ``gemini_batch_jobs``)
before it is created, with the label its create call carries:
a submit killed anywhere resumes its job, never making a second one. Waiting shows the
job's progress; the end says what was answered, what it cost and where the results are.
Talks to Cloud Storage and Vertex AI.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gemini_batch.clients.polling import Backoff, watch_jobs
from gemini_batch.clients.storage import (
    GcsPath,
    object_lines,
    prediction_files,
    require_bucket,
    storage_client,
    upload_file,
)
from gemini_batch.clients.vertex import TOOL_LABEL, JobStatus, VertexJobs, label_value
from gemini_batch.errors import ConfigError, InputError
from gemini_batch.exit_codes import ExitCode
from gemini_batch.rules import catalog, request_schema
from gemini_batch.rules.bill import actual_cost
from gemini_batch.rules.catalog import MAX_REQUESTS_PER_JOB
from gemini_batch.rules.pricing import CostEstimate, estimate_groups, request_price_row
from gemini_batch.rules.request_checks import request_problems
from gemini_batch.state.warehouse import MergeResult
from gemini_batch.submit.ledger import (
    DEFAULT_LEDGER,
    Submission,
    SubmissionStore,
    SubmitLedger,
)

if TYPE_CHECKING:
    from google.cloud import storage

# Problems shown when lines are refused (the count of the others follows).
SHOWN_PROBLEMS = 20
# States after which a new job for the same input is made without asking: the job
# processed nothing (it expired in the queue, or the service lost it).
RESUBMIT_STATES = frozenset({"EXPIRED", "NOT_FOUND"})


@dataclass(frozen=True)
class SubmitOptions:
    input: str  # a local JSONL file or a gs:// URI
    output: str  # gs://bucket/prefix
    model: str
    location: str = "us-central1"
    project: str | None = None
    wait: bool = True
    download: Path | None = None
    ledger: Path = DEFAULT_LEDGER


@dataclass(frozen=True)
class CheckedInput:
    """What the lines of an input hold: every one a request batch takes."""

    requests: int
    sha256: str
    price_rows: list[dict[str, Any]] = field(repr=False)


@dataclass
class SubmitResult:
    submission: Submission
    job: JobStatus
    estimate: CostEstimate
    resumed: bool
    cost_usd: float | None = None
    files: list[GcsPath] = field(default_factory=list)
    downloaded: int = 0

    @property
    def exit_code(self) -> ExitCode:
        if not self.job.terminal:
            return ExitCode.IN_FLIGHT
        if self.job.state == "SUCCEEDED" and not self.job.failed:
            return ExitCode.OK
        return ExitCode.FAILED_ROWS


def check_lines(
    lines: Iterable[bytes], source: str, gemini_model: str | None = None
) -> CheckedInput:
    """Check every line of ``source`` (with ``gemini_model``'s rules); InputError lists
    the bad ones by line number.

    A line is ``{"request": {...}}`` (other fields are allowed; the service is reported
    to leave them out of its output line: docs/decisions/0017);
    blank lines are skipped, as the service skips them. Price rows are grouped as the
    estimate's query groups requests, so memory stays small for a large file.
    """
    digest = hashlib.sha256()
    problems: list[str] = []
    bad = requests = 0
    groups: dict[tuple[Any, ...], dict[str, Any]] = {}
    for number, line in enumerate(lines, start=1):
        digest.update(line)
        if not line.strip():
            continue
        problem, request = _line_problem(line, gemini_model)
        if problem is not None:
            bad += 1
            if len(problems) < SHOWN_PROBLEMS:
                problems.append(f"  line {number}: {problem}")
            continue
        requests += 1
        row = request_price_row(request, gemini_model or "")
        key = (row["requested_budget"], row["max_output_tokens"], row["candidate_count"],
               row["long_context"])
        group = groups.setdefault(key, {**row, "requests": 0, "input_tokens": 0,
                                        "audio_tokens": 0})
        for column in ("requests", "input_tokens", "audio_tokens"):
            group[column] += row[column]
    if bad:
        more = f"\n  ... and {bad - len(problems)} more" if bad > len(problems) else ""
        raise InputError(
            f"{source}: {bad} of {bad + requests} lines cannot be sent, so nothing was "
            "submitted and nothing was paid for:\n" + "\n".join(problems) + more +
            '\nEach line is {"request": {...}} with a GenerateContentRequest; fix these '
            "lines and run the same command again."
        )
    if not requests:
        raise InputError(f"{source} holds no request: write one {{\"request\": {{...}}}} a line.")
    if requests > MAX_REQUESTS_PER_JOB:
        raise InputError(
            f"{source} holds {requests} requests; a batch job takes at most "
            f"{MAX_REQUESTS_PER_JOB}. Split it into files of at most that many lines, or "
            "load it into BigQuery and use a batch model (it splits jobs itself)."
        )
    return CheckedInput(requests, digest.hexdigest(), list(groups.values()))


def _line_problem(line: bytes, gemini_model: str | None) -> tuple[str | None, Any]:
    try:
        value = json.loads(line)
    except ValueError as exc:
        return f"is not JSON ({exc})", None
    if not isinstance(value, dict):
        return "is not a JSON object", None
    if "request" not in value:
        keys = ", ".join(sorted(value)) or "none"
        return f'has no "request" field (its fields: {keys})', None
    # The SQL check's problems first; then what only the full validator reaches (inside
    # lists, value types): the emulator and Vertex AI refuse those too.
    problems = request_problems(value["request"], gemini_model=gemini_model)
    if problems is None and isinstance(value["request"], dict):
        deeper = request_schema.schema_problems(value["request"])
        problems = "; ".join(str(problem) for problem in deeper) or None
    return problems, value["request"]


def _model_problem(model: str, location: str) -> None:
    hint = catalog.check_model(model, location)
    if hint:
        raise ConfigError(f"--model {model}: {hint}")


def _project(options: SubmitOptions) -> str:
    import os

    if options.project:
        return options.project
    if os.environ.get("GEMINI_BATCH_PROJECT"):
        return os.environ["GEMINI_BATCH_PROJECT"]
    try:
        import google.auth

        _, project = google.auth.default()
    except Exception as exc:  # no ADC at all
        raise ConfigError(
            f"No Google Cloud project: pass --project, or set GEMINI_BATCH_PROJECT ({exc})."
        ) from exc
    if not project:
        raise ConfigError("No Google Cloud project: pass --project or set GEMINI_BATCH_PROJECT.")
    return str(project)


def _input_lines(client: storage.Client, source: str) -> Iterator[bytes]:
    path = GcsPath.parse(source)
    if path is not None:
        yield from object_lines(client, path)
        return
    local = Path(source)
    if not local.is_file():
        raise InputError(f"{source} is not a file (nor a gs:// URI): give the JSONL file.")
    with local.open("rb") as lines:
        yield from lines


def submission_key(options: SubmitOptions, project: str, content_sha256: str) -> str:
    """What makes two submits the same submission: what they send, where, to whom."""
    parts = [content_sha256, options.model, project, options.location,
             options.output.rstrip("/")]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def run_submit(
    options: SubmitOptions,
    *,
    say: Callable[[str], None],
    jobs: VertexJobs | None = None,
    client: storage.Client | None = None,
    poll: Backoff | None = None,
    store: SubmissionStore | None = None,
) -> SubmitResult:
    """Check, estimate, upload, submit (or resume), wait if asked, and summarise.

    ``store``: where the job is remembered (the dbt target's ledger, or by default the
    file ``options.ledger``); both resume alike, as this function is the only logic."""
    project = _project(options)
    output = GcsPath.of(options.output, "--output")
    _model_problem(options.model, options.location)
    client = client or storage_client(project)
    checked = check_lines(_input_lines(client, options.input), options.input, options.model)
    estimate = estimate_groups(options.model, checked.price_rows)
    say(f"{options.input}: {checked.requests} requests, every line valid; estimated cost "
        f"{_usd(estimate.usd)} (worst case {_usd(estimate.worst_case_usd)}), model "
        f"{options.model} in {options.location}.")
    jobs = jobs or VertexJobs(project=project, location=options.location)
    store = store or SubmitLedger(options.ledger)
    key = submission_key(options, project, checked.sha256)
    # Held while deciding and creating only: once the job is written down, a second
    # submit of the same input follows the same job.
    with store.locked(key):
        submission, status, resumed = _job_of(
            options, store, jobs, client, key=key, project=project, output=output,
            checked=checked, estimate=estimate, say=say)
    return _follow(options, jobs, store, submission, status, estimate, client, say=say,
                   poll=poll, resumed=resumed)


def _job_of(
    options: SubmitOptions,
    store: SubmissionStore,
    jobs: VertexJobs,
    client: storage.Client,
    *,
    key: str,
    project: str,
    output: GcsPath,
    checked: CheckedInput,
    estimate: CostEstimate,
    say: Callable[[str], None],
) -> tuple[Submission, JobStatus, bool]:
    """The submission's job: the one written down (unless it ended having processed
    nothing), the one a lost create made, or a new one, written down before its create."""
    known = store.find(key)
    if known is not None and known.job_name:
        status = jobs.get(known.job_name)
        if status.state not in RESUBMIT_STATES:
            say(f"Resuming job {status.name} ({status.state}) from {store.where}: "
                "nothing is submitted again.")
            return known, status, True
        say(f"Job {known.job_name} ended {status.state} without processing anything: "
            "submitting a new one.")
        store.write(known.with_job(state=status.state,
                                   collected_at=datetime.now(UTC).isoformat()))
        known = None
    require_bucket(client, output, "--output")
    input_uri = _uploaded_input(client, options.input, output, checked.sha256, say)
    submission = known or Submission(
        key=key, submit_id=secrets.token_hex(8), input_uri=input_uri,
        output=str(output).rstrip("/"), model=options.model, project=project,
        location=options.location, requests=checked.requests, estimated_usd=estimate.usd,
    )
    resumed = known is not None
    status = jobs.made_by(submission.submit_id) if resumed else None
    if status is None:
        store.write(submission)  # before the create: a kill after it finds the job
        status = jobs.submit_jsonl(
            display_name=f"gemini-batch submit {Path(input_uri).name}"[:128],
            gemini_model=options.model,
            input_uris=[input_uri],
            output_prefix=submission.output,
            labels={"tool": TOOL_LABEL, "submit": label_value(key[:16])},
            submit_id=submission.submit_id,
        )
        say(f"Submitted job {status.name}.")
    else:
        say(f"Found job {status.name}, created by an earlier submit: not creating another.")
    submission = store.write(submission.with_job(job_name=status.name, state=status.state))
    return submission, status, resumed


def _uploaded_input(client: storage.Client, source: str, output: GcsPath, sha256: str,
                    say: Callable[[str], None]) -> str:
    """The gs:// URI the job reads: the input itself, or a local file uploaded under
    ``<output>/inputs/`` with its content hash in the name (uploaded once)."""
    if GcsPath.parse(source) is not None:
        return source
    target = output.child(f"inputs/{sha256[:16]}-{Path(source).name}")
    upload_file(client, Path(source), target)
    say(f"Uploaded {source} to {target}.")
    return str(target)


def _follow(
    options: SubmitOptions,
    jobs: VertexJobs,
    store: SubmissionStore,
    submission: Submission,
    status: JobStatus,
    estimate: CostEstimate,
    client: storage.Client,
    *,
    say: Callable[[str], None],
    poll: Backoff | None,
    resumed: bool,
) -> SubmitResult:
    if options.wait:
        status = _wait(jobs, status, say=say, poll=poll or Backoff(initial=0.5, maximum=30.0))
    result = SubmitResult(submission, status, estimate, resumed)
    if status.terminal and status.output_directory:
        result.files = prediction_files(client, status.output_directory)
        usage = _read_predictions(client, result.files, options.download)
        result.cost_usd = actual_cost(options.model, usage)
        result.downloaded = usage.succeeded + usage.failed if options.download else 0
    if status.state != submission.state or (status.terminal and not submission.collected_at):
        result.submission = store.write(submission.with_job(
            state=status.state, output_directory=status.output_directory,
            succeeded=status.succeeded, failed=status.failed, cost_usd=result.cost_usd,
            error=status.error or None,
            collected_at=datetime.now(UTC).isoformat() if status.terminal else None))
    return result


def _wait(jobs: VertexJobs, status: JobStatus, *, say: Callable[[str], None],
          poll: Backoff) -> JobStatus:
    """Poll until the job ends, saying each change of state or counts."""

    def changed(name: str, status: JobStatus) -> None:
        done = status.succeeded + status.failed
        total = done + status.incomplete
        counts = f", {done}/{total} processed ({status.failed} failed)" if total else ""
        say(f"Job {status.job_id}: {status.state}{counts}")

    return watch_jobs([status.name], jobs.get, backoff=poll, on_change=changed,
                      known={status.name: status})[status.name]


def _read_predictions(client: storage.Client, files: list[GcsPath],
                      download: Path | None) -> MergeResult:
    """Token totals of the answered lines (for the cost), streaming every file once;
    with ``download`` the lines are written there as they are read."""
    totals = dict.fromkeys(
        ("succeeded", "failed", "prompt_tokens", "candidates_tokens", "thoughts_tokens",
         "total_tokens", "cached_tokens", "audio_prompt_tokens", "long_prompt_tokens",
         "long_output_tokens", "long_cached_tokens", "long_audio_tokens"), 0)
    out = download.open("wb") if download else None
    try:
        for path in files:
            for line in object_lines(client, path):
                if not line.strip():
                    continue
                if out is not None:
                    out.write(line if line.endswith(b"\n") else line + b"\n")
                _count(json.loads(line), totals)
    finally:
        if out is not None:
            out.close()
    return MergeResult(unanswered=0, **totals)


def _count(line: dict[str, Any], totals: dict[str, int]) -> None:
    if line.get("status") or not isinstance(line.get("response"), dict):
        totals["failed"] += 1
        return
    totals["succeeded"] += 1
    usage = line["response"].get("usageMetadata") or {}
    prompt = int(usage.get("promptTokenCount") or 0)
    output = int(usage.get("candidatesTokenCount") or 0) + int(
        usage.get("thoughtsTokenCount") or 0)
    cached = int(usage.get("cachedContentTokenCount") or 0)
    audio = sum(int(detail.get("tokenCount") or 0)
                for detail in usage.get("promptTokensDetails") or []
                if detail.get("modality") == "AUDIO")
    totals["prompt_tokens"] += prompt
    totals["candidates_tokens"] += int(usage.get("candidatesTokenCount") or 0)
    totals["thoughts_tokens"] += int(usage.get("thoughtsTokenCount") or 0)
    totals["total_tokens"] += int(usage.get("totalTokenCount") or 0)
    totals["cached_tokens"] += cached
    totals["audio_prompt_tokens"] += audio
    if prompt > catalog.LONG_CONTEXT_TOKENS:
        totals["long_prompt_tokens"] += prompt
        totals["long_output_tokens"] += output
        totals["long_cached_tokens"] += cached
        totals["long_audio_tokens"] += audio


def _usd(value: float | None) -> str:
    return "unknown (no price for this model)" if value is None else f"${value:,.4f}"


def summary_lines(result: SubmitResult, options: SubmitOptions) -> list[str]:
    """What the command prints at the end."""
    job = result.job
    if not job.terminal:
        return [
            f"Job {job.name} is {job.state}: it runs on without this process.",
            "Run the same `gemini-batch submit` again to follow it and collect the results "
            "(nothing is submitted twice).",
        ]
    lines = [
        f"Job {job.job_id} ended {job.state}: {job.succeeded} answered, {job.failed} failed "
        f"of {result.submission.requests}.",
        f"Cost: {_usd(result.cost_usd)} (estimated {_usd(result.estimate.usd)}).",
    ]
    if job.error:
        lines.append(f"Error: {job.error}")
    if result.files:
        lines.append(f"Results: {job.output_directory}/ "
                     f"({', '.join(path.name.rsplit('/', 1)[-1] for path in result.files)})")
    if options.download and result.files:
        lines.append(f"Downloaded {result.downloaded} lines to {options.download}.")
    return lines
