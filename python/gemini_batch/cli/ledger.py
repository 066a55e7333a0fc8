"""`gemini-batch status|wait|jobs|cancel|collect|reset`: the ledger and the jobs in it."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console

from gemini_batch.build.summary import counted
from gemini_batch.cli.app import (
    _Ending,
    _ends,
    _human_output,
    _json_option,
    _open_workspace,
    _print_table,
    _project_options,
    _reports_service_errors,
    console,
    err_console,
    main,
)
from gemini_batch.exit_codes import ExitCode

if TYPE_CHECKING:
    from gemini_batch.build.workspace import Workspace

def _ledger_ready(ws: Workspace, human: Console | None = None) -> bool:
    if ws.ledger.exists():
        return True
    (human or console).print(f"No ledger yet ({ws.ledger.table}): no job was ever submitted.")
    return False


@main.command("status")
@_project_options
@click.option("--limit", default=10, show_default=True, help="Recent jobs to show.")
@_json_option
@_reports_service_errors
def status_command(limit: int, as_json: bool, **kwargs: Any) -> None:
    """Jobs in flight (asked of Vertex AI now) and the most recent ones (from the ledger)."""
    from gemini_batch.build.ledger_commands import service_statuses
    from gemini_batch.display import dumps, jobs_document, jobs_table

    live, service, recent = [], {}, []
    ending = _Ending()
    with _human_output(as_json) as human, _ends(ending):
        _, ws = _open_workspace(kwargs)
        if _ledger_ready(ws, human):
            live = ws.ledger.live_jobs()
            service = service_statuses(ws, live)
            if live:
                _print_table(jobs_table("in flight (or not merged yet)", live, service), to=human)
            else:
                human.print("No job in flight.")
            live_names = {entry.job_name for entry in live}
            recent = [e for e in ws.ledger.entries(limit=limit) if e.job_name not in live_names]
            if recent:
                _print_table(jobs_table(f"recent jobs (ledger {ws.ledger.table})", recent),
                             to=human)
    if ending.code == ExitCode.OK and any(not s.terminal for s in service.values()):
        ending.code = ExitCode.IN_FLIGHT
    if as_json:
        click.echo(dumps(jobs_document("status", ending.code, live, service, recent,
                                       exit_reason=ending.exit_reason,
                                       message=ending.message)))
        sys.exit(ending.code)
    if ending.code in (ExitCode.ERROR, ExitCode.INTERRUPTED):
        sys.exit(ending.code)


@main.command("wait")
@_project_options
@click.option("--timeout", type=float, default=None,
              help="Give up after this many seconds (exit 75 if jobs are still in flight).")
@click.option("--poll-interval", type=float, default=5.0, show_default=True,
              help="Seconds before the second poll; grows while jobs run.")
@click.option("--max-poll-interval", type=float, default=60.0, show_default=True,
              help="Longest wait between two polls.")
@_json_option
@_reports_service_errors
def wait_command(timeout: float | None, poll_interval: float, max_poll_interval: float,
                 as_json: bool, **kwargs: Any) -> None:
    """Wait for the jobs in flight (for scripts that submit with `build --no-wait` in one
    step and wait in another). Exits 0 once none runs, 75 at the timeout; merging their
    answers is the next `gemini-batch build`'s."""
    from gemini_batch.build.ledger_commands import wait_for_jobs
    from gemini_batch.display import dumps, jobs_document, jobs_table

    watched, service = [], {}
    ending = _Ending()
    with _human_output(as_json) as human, _ends(ending):
        _, ws = _open_workspace(kwargs)
        if _ledger_ready(ws, human):
            def report(entry: Any, status: Any) -> None:
                human.print(f"{entry.job_id or entry.job_name}: {status.state} "
                            f"({status.succeeded:,} done, {status.failed:,} failed)",
                            highlight=False, markup=False)

            watched, service = wait_for_jobs(
                ws, timeout=timeout, poll_initial=poll_interval, poll_max=max_poll_interval,
                on_status=report,
            )
            if watched:
                _print_table(jobs_table("jobs waited on", watched, service), to=human)
            else:
                human.print("No job in flight.")
    running = [name for name, status in service.items() if not status.terminal]
    if ending.code == ExitCode.OK and running:
        ending.code = ExitCode.IN_FLIGHT
        if not as_json:
            err_console.print(f"{counted(len(running), 'job')} still in flight after "
                              f"{timeout or 0:g} s; the next `gemini-batch build` collects "
                              "them when they end.")
    if as_json:
        click.echo(dumps(jobs_document("wait", ending.code, watched, service,
                                       exit_reason=ending.exit_reason,
                                       message=ending.message)))
    sys.exit(ending.code)


@main.command("jobs")
@_project_options
@click.option("--model", "model_name", help="Only this batch model's jobs (name).")
@click.option("--limit", default=50, show_default=True)
@_reports_service_errors
def jobs_command(model_name: str | None, limit: int, **kwargs: Any) -> None:
    """The ledger (gemini_batch_jobs) as a table, newest first."""
    from gemini_batch.display import jobs_table

    project, ws = _open_workspace(kwargs)
    if not _ledger_ready(ws):
        return
    unique_id = project.find_model(model_name).unique_id if model_name else None
    entries = ws.ledger.entries(unique_id, limit=limit)
    if not entries:
        console.print("No jobs in the ledger" + (f" for {model_name}." if model_name else "."))
        return
    _print_table(jobs_table(f"ledger {ws.ledger.table}", entries))


@main.command("cancel")
@_project_options
@click.argument("what", required=False)
@click.option("--yes", "-y", is_flag=True, help="Do not ask before cancelling every live job.")
@_reports_service_errors
def cancel_command(what: str | None, yes: bool, **kwargs: Any) -> None:
    """Cancel live jobs: of one batch model, one job (id or name), or all (no argument).

    What the jobs answered before they stopped is merged by the build waiting on them,
    or by the next `gemini-batch build`.
    """
    from gemini_batch.build.ledger_commands import cancel_jobs, jobs_to_cancel

    project, ws = _open_workspace(kwargs)
    if not _ledger_ready(ws):
        return
    chosen = jobs_to_cancel(ws, project, what)
    if what is None and chosen and not yes:
        click.confirm(f"Cancel all {counted(len(chosen), 'live job')}?", abort=True)
    if not chosen:
        console.print("No live job to cancel.")
        return
    for entry, status in cancel_jobs(ws, chosen):
        console.print(f"{entry.job_id or entry.job_name}: {status.state} "
                      f"({entry.model_name}, {counted(entry.request_count, 'request')})")


@main.command("collect")
@_project_options
@click.argument("job")
@_reports_service_errors
def collect_command(job: str, **kwargs: Any) -> None:
    """Merge one ended job that is not merged yet (id or full name): a job whose output
    could not be read when it ended, once it can. Exits 1 if it still cannot."""
    from gemini_batch.build.ledger_commands import collect_job
    from gemini_batch.display import make_reporter

    project, ws = _open_workspace(kwargs)
    if not _ledger_ready(ws):
        sys.exit(ExitCode.FAILED)
    summary = collect_job(ws, project, job, make_reporter(console, plain=True))
    problems = ([summary.error] if summary.error else []) + [
        f"job {failed}" for failed in summary.failed_jobs]
    for problem in problems:
        err_console.print(f"{summary.model}: {problem}", highlight=False, markup=False)
    if problems:
        sys.exit(ExitCode.FAILED)
    console.print(f"{summary.model}: job {job} merged ({summary.tokens:,} tokens).",
                  highlight=False)


@main.command("reset")
@_project_options
@click.argument("model_name")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@_reports_service_errors
def reset_command(model_name: str, yes: bool, **kwargs: Any) -> None:
    """Drop a batch model's answers (<model>__responses): the next build asks again.

    Answers are money already spent; this cannot be undone.
    """
    from gemini_batch.build.ledger_commands import check_resettable, reset_answers

    project, ws = _open_workspace(kwargs)
    model = project.find_model(model_name)
    if not ws.bq.table_exists(model.responses_table):
        console.print(f"{model.responses_table} does not exist: nothing to reset.")
        return
    check_resettable(ws, model)
    if not yes:
        click.confirm(
            f"Drop {model.responses_table}? Every answer of {model.name} is lost and paid "
            "again on the next build.", abort=True,
        )
    reset_answers(ws, model)
    console.print(f"Dropped {model.responses_table}. The next dbt run creates it empty.")


@main.command("retry")
@_project_options
@click.argument("model_name")
@click.option("--reason", "prefix", default="", metavar="PREFIX",
              help="Only requests whose last_error starts with PREFIX (e.g. EMPTY_ANSWER, "
              "BLOCKED, 400); default: every failed request.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@_json_option
@_reports_service_errors
def retry_command(model_name: str, prefix: str, yes: bool, as_json: bool,
                  **kwargs: Any) -> None:
    """Ask again for a batch model's requests that ended failed: the next build sends them.

    Every other answer is kept; the old answers of these requests stay until the new
    ones replace them. Sending them again is paid again (the estimate is shown first).
    """
    from gemini_batch.build.ledger_commands import plan_retry, retry_requests
    from gemini_batch.display import dumps

    if as_json and not yes:
        raise click.UsageError("retry --json needs --yes: a JSON document is for scripts, "
                               "which cannot answer the confirmation.")
    ending = _Ending()
    document: dict[str, Any] = {"model": model_name, "reason_prefix": prefix or None,
                                "requests": 0, "estimated_cost_usd": None, "invalid": 0}
    with _human_output(as_json) as human, _ends(ending):
        project, ws = _open_workspace(kwargs)
        model = project.find_model(model_name)
        document["model"] = model.name
        if not ws.bq.table_exists(model.responses_table):
            human.print(f"{model.responses_table} does not exist: nothing failed yet.")
        else:
            with plan_retry(ws, model, prefix) as plan:
                found = plan.choice.requests
                which = f" with last_error starting {prefix!r}" if prefix else ""
                cost = ("" if plan.estimated_usd is None
                        else f", est. ${plan.estimated_usd:,.4f} to send again")
                document.update(invalid=plan.choice.invalid,
                                estimated_cost_usd=plan.estimated_usd)
                if plan.choice.invalid:
                    human.print(f"{model.name}: {counted(plan.choice.invalid, 'invalid request')}"
                                " left out: the service would refuse them again (fix the "
                                "model's SQL; the next build checks them again).",
                                highlight=False, markup=False)
                if not found:
                    human.print(f"{model.name}: no failed request{which} to ask again.",
                                highlight=False, markup=False)
                else:
                    human.print(f"{model.name}: {counted(found, 'failed request')}{which}"
                                f"{cost}.", highlight=False, markup=False)
                    if not yes:
                        click.confirm(f"Ask again for {counted(found, 'request')} of "
                                      f"{model.name}?", abort=True)
                    marked = retry_requests(ws, model, plan)
                    document["requests"] = marked
                    human.print(f"{model.name}: {counted(marked, 'request')} pending again; "
                                "the next `gemini-batch build` sends them.",
                                highlight=False, markup=False)
    if as_json:
        click.echo(dumps({"command": "retry", **ending.fields(), **document}))
    sys.exit(ending.code)
