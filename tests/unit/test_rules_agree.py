"""The rules the dbt package and the Python operator both write agree.

Some rules must exist on both sides: the materialization creates `<model>__responses`
and decides `batch_state`, the operator fills the table and picks what to send again;
the shipped models read the ledger the operator writes; both check a model's settings.
Each rule has one home per side, and this test holds the two together: the package
prints its side (`dbt run-operation gemini_batch.print_rules`, no query, no
connection), and every rule is compared with the Python names that hold it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import types
import typing
from pathlib import Path
from typing import Any

import annotated_types
import pytest
import sqlglot
from dbt.cli.main import dbtRunner
from pydantic import Strict
from pydantic.fields import FieldInfo

from gemini_batch.rules import answers, catalog, config, processing
from gemini_batch.rules import pricing as cost
from gemini_batch.state import estimate_query, ledger, reuse, warehouse
from helpers.offline_profile import offline_profile

REPO_ROOT = Path(__file__).resolve().parents[2]

# A project that installs the package from this checkout; the profile is never
# connected to (print_rules runs no query).
_PROJECT = """\
name: rules_probe
version: "0.1.0"
config-version: 2
profile: rules_probe
"""


def _run_operation(
    tmp_path_factory: pytest.TempPathFactory, macro: str, args: dict[str, Any] | None = None
) -> Any:
    """What `dbt --quiet run-operation <macro>` prints as its one JSON line."""
    project = tmp_path_factory.mktemp("rules-project")
    (project / "dbt_project.yml").write_text(_PROJECT)
    (project / "profiles.yml").write_text(offline_profile("rules_probe"))
    (project / "packages.yml").write_text(f"packages:\n  - local: {REPO_ROOT}\n")
    where = ["--project-dir", str(project), "--profiles-dir", str(project)]
    extra = ["--args", json.dumps(args)] if args else []
    printed = io.StringIO()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
        patch.setenv("DBT_TARGET_PATH", str(project / "target"))
        patch.setenv("DBT_LOG_PATH", str(project / "logs"))
        deps = dbtRunner().invoke(["deps", *where])
        assert deps.success, f"dbt deps failed: {deps.exception}"
        # dbt's print() writes to sys.stdout; --quiet keeps dbt's own lines out of it.
        with contextlib.redirect_stdout(printed):
            run = dbtRunner().invoke(["--quiet", "run-operation", macro, *extra, *where])
    assert run.success, f"dbt run-operation {macro} failed: {run.exception}"
    documents = [line for line in printed.getvalue().splitlines() if line.startswith(("{", "["))]
    assert len(documents) == 1, f"expected one JSON line, dbt printed:\n{printed.getvalue()}"
    return json.loads(documents[0])


@pytest.fixture(scope="module")
def jinja_rules(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """What `gemini_batch.print_rules` prints: the Jinja side of every rule."""
    return _run_operation(tmp_path_factory, "gemini_batch.print_rules")


def test_ledger_columns_agree(jinja_rules: dict[str, Any]) -> None:
    assert jinja_rules["ledger_columns"] == [list(item) for item in ledger.LEDGER_SCHEMA.items()]


def test_responses_columns_agree(jinja_rules: dict[str, Any]) -> None:
    assert jinja_rules["responses_columns"] == [
        list(item) for item in warehouse.RESPONSES_SCHEMA.items()
    ]


def test_multi_regions_agree(jinja_rules: dict[str, Any]) -> None:
    assert set(jinja_rules["multi_regions"]) == set(config.MULTI_REGIONS)
    assert len(jinja_rules["multi_regions"]) == len(config.MULTI_REGIONS)


_TYPES = {str: "string", int: "integer", float: "number", bool: "boolean", dict: "mapping"}


def _python_setting(field: FieldInfo) -> dict[str, Any]:
    """A BatchModelConfig field written as print_rules writes a setting."""
    kinds = [a for a in typing.get_args(field.annotation) if a is not type(None)]
    union = typing.get_origin(field.annotation) in (typing.Union, types.UnionType)
    kind = kinds[0] if union and len(kinds) == 1 else field.annotation
    choices = typing.get_origin(kind) is typing.Literal  # a string of a few values
    setting: dict[str, Any] = {
        "type": "string" if choices else _TYPES[typing.get_origin(kind) or kind],
        "required": field.is_required(),
        "default": None if field.is_required() else field.get_default(call_default_factory=True),
        "min": None,
        "max": None,
        "above": None,
        "choices": list(typing.get_args(kind)) if choices else None,
    }
    for constraint in field.metadata:
        if isinstance(constraint, annotated_types.Ge):
            setting["min"] = constraint.ge
        elif isinstance(constraint, annotated_types.Le):
            setting["max"] = constraint.le
        elif isinstance(constraint, annotated_types.Gt):
            setting["above"] = constraint.gt
        elif isinstance(constraint, Strict):
            pass  # the Jinja side takes no string nor boolean for a number either
        else:
            pytest.fail(f"print_rules has no way to write the constraint {constraint!r}")
    return setting


def test_config_keys_defaults_and_limits_agree(jinja_rules: dict[str, Any]) -> None:
    jinja = {
        name: {
            "type": setting["type"],
            "required": setting.get("required", False),
            "default": setting.get("default"),
            "min": setting.get("min"),
            "max": setting.get("max"),
            "above": setting.get("above"),
            "choices": setting.get("choices"),
        }
        for name, setting in jinja_rules["config"].items()
    }
    python = {
        name: _python_setting(field) for name, field in config.BatchModelConfig.model_fields.items()
    }
    assert jinja == python
    assert jinja["shard_size"]["max"] == config.MAX_SHARD_SIZE
    assert jinja["max_queue_hours"]["max"] == catalog.QUEUE_LIMIT_HOURS


def test_config_patterns_agree(jinja_rules: dict[str, Any]) -> None:
    # The model name is pasted into SQL as a literal: both sides must be as strict.
    assert jinja_rules["config"]["gemini_model"]["pattern"] == config._GEMINI_MODEL.pattern
    assert jinja_rules["config"]["location"]["pattern"] == config._LOCATION.pattern
    assert jinja_rules["config"]["connection_id"]["pattern"] == config._CONNECTION_ID.pattern


def _normalised(sql: str) -> str:
    return sqlglot.parse_one(sql, read="bigquery").sql(
        dialect="bigquery", normalize=True, normalize_functions="upper"
    )


def test_answered_rule_agrees(jinja_rules: dict[str, Any]) -> None:
    assert _normalised(jinja_rules["answered_sql"]) == _normalised(
        answers.answered_sql("t.status", "t.response")
    )


def test_empty_answer_rule_agrees(jinja_rules: dict[str, Any]) -> None:
    assert _normalised(jinja_rules["empty_answer_sql"]) == _normalised(
        answers.empty_answer_sql("t.status", "t.response")
    )


@pytest.mark.parametrize("retry_empty", [False, True])
def test_final_failure_rule_agrees(jinja_rules: dict[str, Any], retry_empty: bool) -> None:
    key = "final_failure_retry_empty_sql" if retry_empty else "final_failure_sql"
    assert _normalised(jinja_rules[key]) == _normalised(
        answers.final_failure_sql(
            "t.status", "t.error_code", "t.empty_answer", retry_empty_answers=retry_empty)
    )


def test_error_code_rule_agrees(jinja_rules: dict[str, Any]) -> None:
    """Retry classes read the HTTP code of a row error as the error_code macro does."""
    assert _normalised(jinja_rules["error_code_sql"]) == _normalised(
        answers.error_code_sql("t.status")
    )


def test_failed_for_good_rule_agrees(jinja_rules: dict[str, Any]) -> None:
    """The view's batch_state 'failed' and the operator's pending requests, retries
    asked with `gemini-batch retry` included."""
    assert _normalised(jinja_rules["failed_for_good_sql"]) == _normalised(
        answers.failed_for_good_sql(
            "t.status", "t.error_code", "t.empty_answer", "t.attempts", "t.retry_at_attempt",
            "@max_retries", retry_empty_answers=False, last_error="t.last_error",
            empty_retries="1")
    )


def test_locks_columns_and_ended_states_agree(jinja_rules: dict[str, Any]) -> None:
    """The AI.GENERATE route takes the lock a build takes and skips live batch jobs."""
    assert jinja_rules["locks_columns"] == [list(item) for item in ledger.LOCKS_SCHEMA.items()]
    assert sorted(jinja_rules["ended_states"]) == sorted(ledger.ENDED_STATES)
    assert jinja_rules["ai_generate_prefix"] == ledger.AI_GENERATE_PREFIX
    assert jinja_rules["lock_token_env"] == ledger.LOCK_TOKEN_ENV


def _probe_model(*, retry_empty_answers: bool) -> config.BatchModel:
    return config.BatchModel(
        unique_id="model.p.m", name="m", project="p", dataset="d",
        config=config.BatchModelConfig(
            gemini_model="gemini-2.5-flash", max_retries=2,
            retry_empty_answers=retry_empty_answers),
    )


@pytest.mark.parametrize("retry_empty", [False, True])
def test_pending_rule_agrees(jinja_rules: dict[str, Any], retry_empty: bool) -> None:
    """Pending means the same on both routes: the AI.GENERATE route sends what a build
    would submit."""
    store = warehouse.Warehouse(bq=None)  # type: ignore[arg-type]  # builds SQL only
    model = _probe_model(retry_empty_answers=retry_empty)
    sql, params = store.pending_query(model, [] if retry_empty else ["p.d.shard"])
    python = sql.replace("@max_retries", str(params["max_retries"]))
    key = "pending_retry_empty_sql" if retry_empty else "pending_sql"
    assert _normalised(jinja_rules[key]) == _normalised(python)


@pytest.mark.parametrize(("key", "gemini_model"), [
    ("estimate_groups_sql", "gemini-2.5-flash"),
    ("estimate_groups_sql_gemini_3", "publishers/google/models/gemini-3-pro-preview"),
])
def test_estimate_query_agrees(jinja_rules: dict[str, Any], key: str, gemini_model: str) -> None:
    """Both routes count candidates, declarations and media (at the generation's rates)
    alike."""
    python = estimate_query.estimate_groups_sql(
        "select request_id, request from pending", gemini_model,
    ).replace("@long_context_tokens", str(catalog.LONG_CONTEXT_TOKENS))
    assert _normalised(jinja_rules[key]) == _normalised(python)


def test_catalog_agrees(jinja_rules: dict[str, Any]) -> None:
    """The AI.GENERATE route prices requests from the same catalog as batch jobs."""
    python = {
        name: {
            "price": {key: value for key, value in dataclasses.asdict(model.price).items()
                      if value is not None and key != "batch_discount"},
            # What the estimate reads of thinking (`levels` is the request check's).
            "thinking": {key: value for key, value in dataclasses.asdict(model.thinking).items()
                         if key != "levels"},
            "max_output_tokens": model.max_output_tokens,
            "aliases": list(model.aliases),
        }
        for name, model in catalog.MODELS.items()
    }
    assert jinja_rules["catalog"] == python
    assert {model.price.batch_discount for model in catalog.MODELS.values()} == {0.5}


def test_failure_reason_rule_agrees(jinja_rules: dict[str, Any]) -> None:
    assert _normalised(jinja_rules["failure_reason_sql"]) == _normalised(
        answers.failure_reason_sql("t.status", "t.response", "t.request")
    )


def test_ai_generate_processing_price_agrees(jinja_rules: dict[str, Any]) -> None:
    assert jinja_rules["bigquery_usd_per_tib"] == processing.BIGQUERY_USD_PER_TIB


_REQUESTS = [
    {"contents": [{"role": "user", "parts": [{"text": "Summarize: " + "x" * 900}]}]},
    {"contents": [{"role": "user", "parts": [{"text": "short"}]}],
     "generationConfig": {"maxOutputTokens": 100,
                          "thinkingConfig": {"thinkingBudget": 0}}},
    {"contents": [{"role": "user", "parts": [
        {"text": "Describe"},
        {"fileData": {"fileUri": "gs://b/a.mp3", "mimeType": "audio/mpeg"}}]}],
     "generationConfig": {"thinkingConfig": {"thinkingBudget": 300}}},
    {"contents": [{"parts": [{"text": "y" * 40}]}],
     "generationConfig": {"maxOutputTokens": 50, "thinkingConfig": {"thinkingBudget": -1}}},
    {"contents": [{"parts": [{"text": "Pick one"}]}],
     "tools": [{"functionDeclarations": [{"name": "pick", "description": "z" * 120}]}],
     "generationConfig": {"candidateCount": 3, "maxOutputTokens": 400}},
]
_ESTIMATE_CASES = [
    {"gemini_model": "gemini-2.5-flash", "observed": None, "prices": None},
    {"gemini_model": "gemini-2.5-pro", "observed": [120.5, 640.25], "prices": None},
    {"gemini_model": "publishers/google/models/gemini-2.0-flash@001", "observed": None,
     "prices": None},
    {"gemini_model": "gemini-2.5-flash-lite", "observed": None,
     "prices": {"gemini-2.5-flash-lite": {"input": 0.2, "batch_discount": 0.4}}},
    {"gemini_model": "my-tuned-model", "observed": None, "prices": None},
]


def test_estimate_arithmetic_agrees(tmp_path_factory: pytest.TempPathFactory) -> None:
    """The AI.GENERATE route's cap is checked against the batch estimate: the package's
    arithmetic (print_estimate) gives the numbers cost.estimate_groups gives."""
    rows = [cost.request_price_row(request) for request in _REQUESTS]
    cases = [{**case, "rows": rows} for case in _ESTIMATE_CASES]
    printed = _run_operation(tmp_path_factory, "gemini_batch.print_estimate", {"cases": cases})
    for case, jinja in zip(cases, printed, strict=True):
        prices = cost.PriceTable.from_vars({cost.PRICES_VAR: case["prices"]} if case["prices"]
                                           else {})
        observed = tuple(case["observed"]) if case["observed"] else None
        python = cost.estimate_groups(case["gemini_model"], rows, prices=prices,
                                      observed=observed)
        assert jinja["requests"] == python.requests
        assert jinja["input_tokens"] == python.input_tokens
        assert round(jinja["thinking_tokens"]) == python.thinking_tokens
        assert round(jinja["answer_tokens"]) == python.answer_tokens
        assert jinja["worst_case_output_tokens"] == python.worst_case_output_tokens
        assert jinja["thinking_trap"] == python.thinking_trap, case
        for key in ("usd", "worst_case_usd"):
            expected = getattr(python, key)
            assert (jinja[key] is None) == (expected is None), (case, key)
            if expected is not None:
                assert jinja[key] == pytest.approx(expected, rel=1e-9), (case, key)


def test_copy_of_answers_agrees(jinja_rules: dict[str, Any]) -> None:
    """Answers from another dataset are copied alike by a build and by a plain dbt run."""
    python = reuse.copy_answers_sql("`p`.`d`.`m__responses`", "`q`.`e`.`m__responses`",
                                    "q.e.m__responses", "select request_id from pending")
    assert _normalised(jinja_rules["copy_answers_sql"]) == _normalised(python)


def test_sample_agrees(jinja_rules: dict[str, Any]) -> None:
    """`build --sample N` and var gemini_batch_sample in a plain dbt run send the same rows."""
    python = reuse.sample_sql("select request_id, request from pending", "`p`.`d`.`m__requests`", 7)
    assert _normalised(jinja_rules["sample_sql"]) == _normalised(python)
    assert jinja_rules["key_column"] == reuse.KEY_COLUMN
    assert jinja_rules["reused_prefix"] == ledger.REUSED_PREFIX
