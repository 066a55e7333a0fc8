"""How the commands end when something stops them, without a server: the exit reason of
each error, the --json document on every exit, the counts said in words, and the dbt
flags every stage gets."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from rich.console import Console

from gemini_batch import errors
from gemini_batch.build.dbt_project import DbtOptions
from gemini_batch.build.stages import BuildResult
from gemini_batch.build.summary import INTERRUPTED_NOTE, ModelSummary, counted
from gemini_batch.cli import main
from gemini_batch.display import PlainReporter, build_document, summary_notes
from gemini_batch.exit_codes import ExitCode


@pytest.mark.parametrize(("error", "reason"), [
    (errors.DbtError("dbt build (stage 2 of 3) failed"), "dbt_failed"),
    (errors.DbtParseError("dbt parse failed"), "parse_error"),
    (errors.ConfigError("shard_size"), "config_error"),
    (errors.LockedError("held"), "locked"),
    (errors.BudgetExceededError("cap"), "over_budget"),
    (errors.ServiceError("refused"), "service_error"),
    (errors.GeminiBatchError("other"), "error"),
])
def test_a_build_stopped_by_an_error_keeps_what_ran(error, reason):
    ran = ModelSummary(model="questions", submitted=3, succeeded=3, jobs=1)
    result = BuildResult.stopped(error, [ran])
    assert (result.exit_code, result.exit_reason) == (ExitCode.ERROR, reason)
    assert result.summaries == [ran] and result.errors == [str(error)]
    document = build_document("build", result.exit_code, result.summaries, result.errors,
                              result.jobs, exit_reason=result.exit_reason,
                              message=str(error))
    assert document["exit_reason"] == reason and document["message"] == str(error)
    assert document["models"][0]["succeeded"] == 3


def test_a_build_stopped_by_ctrl_c_is_interrupted_not_an_error():
    stopped = ModelSummary(model="questions", submitted=3, jobs=1, error=INTERRUPTED_NOTE)
    broken = ModelSummary(model="other", error="over the cap")
    result = BuildResult.stopped(KeyboardInterrupt(), [stopped, broken])
    assert (result.exit_code, result.exit_reason) == (ExitCode.INTERRUPTED, "interrupted")
    assert result.errors == ["other: over the cap"]  # the interruption is no model's error


def _json(args: list[str]) -> tuple[int, dict]:
    result = CliRunner().invoke(main, args)
    return result.exit_code, json.loads(result.stdout)


@pytest.mark.parametrize("command", ["build", "run", "plan", "status", "wait"])
def test_json_is_printed_when_dbt_cannot_even_parse(command: str, tmp_path: Path):
    code, document = _json([command, "--json", "--project-dir", str(tmp_path)])
    assert code == 1
    assert document["command"] == command
    assert (document["exit_code"], document["exit_reason"]) == (1, "parse_error")
    assert "dbt parse failed" in document["message"]
    if command in ("build", "run"):
        assert document["errors"] == [document["message"]] and document["models"] == []


def test_counts_are_said_in_words():
    assert counted(1, "request") == "1 request"
    assert counted(0, "answer") == "0 answers"
    assert counted(1200, "request") == "1,200 requests"
    out = io.StringIO()
    PlainReporter(Console(file=out, width=200)).job_started("q", "jobs/42", 1)
    assert out.getvalue().endswith("q: job 42 submitted (1 request)\n")
    notes = summary_notes(ModelSummary(model="q", requests=1, pending=1, invalid=1,
                                       error=None, submitted=1))
    assert "q: 1 invalid request was not submitted" in notes[0]
    assert notes[-1].startswith("q: 1 request is still pending")


def test_state_and_deferral_reach_the_selection_and_every_stage():
    options = DbtOptions(select=("questions",), state="prod/", defer=True, favor_state=False,
                         defer_state="prod-defer/")
    assert options.state_args() == ["--state", "prod/", "--defer-state", "prod-defer/",
                                    "--defer", "--no-favor-state"]
    assert options.selection_args() == ["--select", "questions", *options.state_args()]
    assert DbtOptions().state_args() == []
