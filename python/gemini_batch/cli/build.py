"""`gemini-batch build|run|plan`: dbt in stages with the batch jobs in between; the cost."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import click

from gemini_batch.cli.app import (
    INTERRUPTED_LINE,
    _dbt_options,
    _Ending,
    _ends,
    _human_output,
    _json_option,
    _print_error,
    _print_interrupted,
    _print_notes,
    _print_table,
    _project_options,
    _reports_service_errors,
    _selection_options,
    _settle,
    main,
)
from gemini_batch.clients.polling import POLL_INTERVAL_ENV
from gemini_batch.exit_codes import ExitCode

_PASS_THROUGH = {"ignore_unknown_options": True, "allow_extra_args": True}


def _run_build(command: str, ctx: click.Context, kwargs: dict[str, Any]) -> None:
    from gemini_batch.build.context import BatchSettings
    from gemini_batch.build.dbt_options import run_flags
    from gemini_batch.build.stages import BuildResult, build
    from gemini_batch.display import make_reporter, print_summary

    _settle()  # the build's libraries are imported
    extra = run_flags(ctx.args, full_refresh=kwargs.pop("full_refresh"),
                      threads=kwargs.get("threads"), fail_fast=kwargs.pop("fail_fast"))
    options = _dbt_options(_with_sample(kwargs), extra)
    settings = BatchSettings(
        poll_initial=kwargs["poll_interval"],
        poll_max=kwargs["max_poll_interval"],
        fail_on_failed_rows=kwargs["fail_on_failed_rows"],
        wait=not kwargs["no_wait"],
        # dbt --defer --state: answers are read from the deferred relations' datasets.
        defer_state=options.deferred_to,
    )
    plain = True if kwargs["plain"] or kwargs["as_json"] else None
    ending = _Ending()
    result = BuildResult(summaries=[], errors=[], exit_code=ExitCode.OK)
    with _human_output(kwargs["as_json"]) as human:
        # What stops the build before any batch model ran (the parse, the selection, a
        # lock held) ends it here; later, build() returns what ran before the stop.
        with _ends(ending):
            result = build(
                options,
                command=command,
                reporter_factory=lambda: make_reporter(human, plain=plain),
                settings=settings,
            )
        print_summary(human, result.summaries)
        for error in result.errors:
            _print_error(error)
        if result.exit_code == ExitCode.INTERRUPTED:
            _print_interrupted()
    if ending.code != ExitCode.OK:
        result.exit_code, result.reason = ending.code, ending.reason
        if ending.code == ExitCode.ERROR and ending.message:
            result.errors.append(ending.message)  # said above, by _ends
    if kwargs["as_json"]:
        from gemini_batch.display import build_document, dumps

        message = ending.message or (INTERRUPTED_LINE if result.exit_code
                                     == ExitCode.INTERRUPTED else None)
        if message is None and result.exit_code == ExitCode.ERROR and result.errors:
            message = result.errors[-1]
        click.echo(dumps(build_document(
            command, result.exit_code, result.summaries, result.errors, result.jobs,
            exit_reason=result.exit_reason, message=message)))
    sys.exit(result.exit_code)


def _with_sample(kwargs: dict[str, Any]) -> dict[str, Any]:
    """``kwargs`` with --sample N given to dbt as var gemini_batch_sample (a plain
    ``dbt run`` reads the same var): both routes send the same rows."""
    sample = kwargs.pop("sample", None)
    if sample is None:
        return kwargs
    import yaml

    given = yaml.safe_load(kwargs.get("vars") or "") or {}
    if not isinstance(given, dict):
        raise click.BadParameter("give --vars as a YAML mapping", param_hint="--vars")
    return {**kwargs, "vars": yaml.safe_dump({**given, "gemini_batch_sample": sample},
                                            default_flow_style=True).strip()}


_sample_option = click.option(
    "--sample", type=click.IntRange(min=1), metavar="N",
    help="Send at most N pending requests per batch model, the same rows each time (by "
    "a hash of their key columns); the rest stay pending. Var gemini_batch_sample.")


def _build_options(func: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed(
        [
            _sample_option,
            click.option("--full-refresh", is_flag=True,
                         help="dbt --full-refresh (answers are kept: they are the cache)."),
            click.option("--threads", type=int, help="dbt threads."),
            click.option("--fail-fast", "-x", is_flag=True, help="dbt --fail-fast."),
            click.option(
                "--fail-on-failed-rows/--no-fail-on-failed-rows", default=None,
                help="Exit 3 when rows end failed (default: each model's "
                "fail_on_failed_rows config, true unless set).",
            ),
            click.option("--poll-interval", type=float, default=1.0, show_default=True,
                         envvar=POLL_INTERVAL_ENV, show_envvar=True,
                         help="Seconds before the first poll of a job; grows while it runs."),
            click.option("--max-poll-interval", type=float, default=60.0, show_default=True,
                         help="Longest wait between two polls of a job."),
            click.option("--plain", is_flag=True,
                         help="Log lines instead of live progress (default off a terminal)."),
            click.option("--no-wait", is_flag=True,
                         help="Submit, merge what ended, and exit 75 while jobs are in "
                         "flight; any later build collects them (no request is sent twice)."),
            _json_option,
        ]
    ):
        func = option(func)
    return func


@main.command("build", context_settings=_PASS_THROUGH)
@_project_options
@_selection_options
@_build_options
@click.pass_context
@_reports_service_errors
def build_command(ctx: click.Context, **kwargs: Any) -> None:
    """dbt build in stages, with the Gemini batch jobs in between.

    Upstream of each batch model, then its jobs (submitted, waited on, merged), then
    downstream models and tests. Other dbt flags are passed to dbt as they are.
    """
    _run_build("build", ctx, kwargs)


@main.command("run", context_settings=_PASS_THROUGH)
@_project_options
@_selection_options
@_build_options
@click.pass_context
@_reports_service_errors
def run_command(ctx: click.Context, **kwargs: Any) -> None:
    """dbt run (models only, no tests) in stages, with the Gemini batch jobs in between."""
    _run_build("run", ctx, kwargs)


@main.command("plan")
@_project_options
@_selection_options
@_sample_option
@_json_option
@_reports_service_errors
def plan_command(as_json: bool, **kwargs: Any) -> None:
    """What `build` would submit per batch model: cached, pending, failed, shards, cost.

    Reads the tables of the last dbt run; submits nothing and changes nothing.
    """
    from gemini_batch.build.plan import plan
    from gemini_batch.display import dumps, plan_document, plan_notes, plan_table

    plans = []
    ending = _Ending()
    with _human_output(as_json) as human, _ends(ending):
        plans = plan(_dbt_options(_with_sample(kwargs)))
        if not plans:
            human.print("No batch model (materialized='gemini_batch') in the selection.")
        else:
            _print_table(plan_table(plans), to=human)
            _print_notes(plan_notes(plans), to=human)
    if as_json:
        click.echo(dumps({"command": "plan", **ending.fields(),
                          **plan_document(plans)}))
    sys.exit(ending.code)
