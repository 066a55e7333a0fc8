"""`gemini-batch submit`: a JSONL file of requests through one Vertex AI batch job."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from gemini_batch.cli.app import (
    _open_workspace,
    _project_options,
    _reports_service_errors,
    err_console,
    main,
)
from gemini_batch.errors import GeminiBatchError
from gemini_batch.exit_codes import ExitCode


@main.command("submit")
@click.argument("input_file", metavar="INPUT")
@click.option("--output", required=True, metavar="gs://BUCKET/PREFIX",
              help="Where the job writes its results (and a local INPUT is uploaded).")
@click.option("--model", required=True, help="Gemini model id, e.g. gemini-2.5-flash.")
@click.option("--location", default="us-central1", show_default=True,
              help="Region of the job (or global).")
@click.option("--project", default=None, envvar="GEMINI_BATCH_PROJECT",
              help="Google Cloud project (default: $GEMINI_BATCH_PROJECT, then the dbt "
              "target's with a profile, then ADC's).")
@click.option("--no-wait", is_flag=True, help="Submit and exit 75; run again to collect.")
@click.option("--download", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the result lines to this local file.")
@click.option("--ledger", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="The local file that remembers submitted jobs (a rerun resumes them); "
              "default .gemini_batch/submit-jobs.jsonl, unless a dbt profile is given.")
@_project_options
@_reports_service_errors
def submit_command(input_file: str, output: str, model: str, location: str,
                   project: str | None, no_wait: bool, download: Path | None,
                   ledger: Path | None, **kwargs: Any) -> None:
    """Run one batch job over a JSONL file of requests: INPUT is a local file or gs:// URI,
    one {"request": {...}} per line (the tutorial's format).

    Every line is checked before anything is paid for; the job is remembered in a ledger
    (the dbt target's gemini_batch_jobs when --project-dir, --profiles-dir, --target or
    --profile is given, otherwise a local file), so running the same command again
    resumes it instead of paying twice.
    """
    from gemini_batch.submit.command import SubmitOptions, run_submit, summary_lines
    from gemini_batch.submit.ledger import DEFAULT_LEDGER, SubmissionStore

    store: SubmissionStore | None = None
    profile_options = ("project_dir", "profiles_dir", "target", "profile")
    if any(kwargs.get(name) for name in profile_options):
        if ledger is not None:
            raise GeminiBatchError(
                "--ledger is the local ledger file; with a dbt profile the job goes in the "
                "target's gemini_batch_jobs. Give one or the other.")
        from gemini_batch.submit.ledger import TargetSubmitLedger

        _, ws = _open_workspace(kwargs)
        store = TargetSubmitLedger(ws.ledger)
        project = project or ws.target.project
    options = SubmitOptions(input=input_file, output=output, model=model, location=location,
                            project=project, wait=not no_wait, download=download,
                            ledger=ledger or DEFAULT_LEDGER)

    def say(line: str) -> None:
        err_console.print(line, highlight=False, markup=False, soft_wrap=True)

    try:
        result = run_submit(options, say=say, store=store)
    except KeyboardInterrupt:
        say("Interrupted: the job (if one was created) runs on; run the same command again "
            "to follow it.")
        sys.exit(ExitCode.INTERRUPTED)
    for line in summary_lines(result, options):
        click.echo(line)
    sys.exit(result.exit_code)
