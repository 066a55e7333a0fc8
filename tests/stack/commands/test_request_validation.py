"""Issue 22 on the local stack: what Vertex AI would refuse is refused before any job.

Three batch models, each with one of the issue's requests (a nested typo, a response
schema with BigQuery's type names, thinking turned off on 2.5 Pro): `gemini-batch
build` sends none of them (the Vertex emulator gets no job) and names the field;
`gemini_batch.valid_request` fails on the same rows, with the model's own rules.
"""

from __future__ import annotations

import json
import textwrap

import pytest

from helpers.dbt_projects import DbtTestProject

pytestmark = pytest.mark.slow

CASES = {
    "typo": ("gemini-2.5-flash", {"thinkingConfig": {"thinkingBugdet": 512}},
             "generationConfig.thinkingConfig.thinkingBugdet: unknown field; "
             "did you mean thinkingBudget?"),
    "int64": ("gemini-2.5-flash",
              {"responseMimeType": "application/json",
               "responseSchema": {"type": "OBJECT", "properties": {"urgency": {"type": "INT64"}}}},
              'generationConfig.responseSchema: type "INT64" is not one of STRING, NUMBER, '
              "INTEGER, BOOLEAN, ARRAY, OBJECT, NULL; did you mean INTEGER?"),
    "pro_off": ("gemini-2.5-pro", {"thinkingConfig": {"thinkingBudget": 0}},
                "generationConfig.thinkingConfig.thinkingBudget: 0 turns thinking off, which "
                "gemini-2.5-pro cannot do; use 128 to 32768, or -1 (dynamic)"),
}


def _model_sql(gemini_model: str, config: dict) -> str:
    config_json = json.dumps(config).replace("'", "\\'")
    return textwrap.dedent(f"""\
        {{{{ config(materialized='gemini_batch', gemini_model='{gemini_model}') }}}}
        select id, parse_json(concat(
            '{{"contents": [{{"role": "user", "parts": [{{"text": ', to_json_string(prompt),
            '}}]}}], "generationConfig": {config_json}}}')) as request
        from {{{{ ref('prompts') }}}}
        """)


def test_requests_vertex_would_refuse_are_refused_before_any_job(project: DbtTestProject):
    for name, (gemini_model, config, _) in CASES.items():
        project.write(f"models/refused_{name}.sql", _model_sql(gemini_model, config))
    project.write("models/refused.yml", "version: 2\nmodels:\n" + "".join(
        f"  - name: refused_{name}\n    columns:\n      - name: request\n"
        "        data_tests: [gemini_batch.valid_request]\n" for name in CASES))

    output = project.cli("build", "--select", "+refused_typo +refused_int64 +refused_pro_off")
    # The valid_request tests run before the jobs (they gate them) and fail: exit 1.
    assert output.exit_code == 1, output.output
    sent = {job.input_table.split(".")[-1].split("__")[0] for job in project.jobs()}
    for name, (_, _, problem) in CASES.items():
        assert f"refused_{name}" not in sent  # the Vertex emulator was given nothing
        assert (f"refused_{name}: request test gemini_batch_valid_request_refused_{name}_request"
                " failed on 3 rows") in output.output
        assert "nothing was submitted" in output.output
        assert problem in output.output  # the field is named
        # The view says why in last_error (request_problem stays in <model>__requests).
        rows = project.rows(f"select batch_state, last_error from `{{ds}}.refused_{name}`")
        assert {(row["batch_state"], row["last_error"]) for row in rows} == {
            ("failed", problem)}

    tested = project.dbt("test", "--select", "refused_typo refused_int64 refused_pro_off")
    failures = {result.node.attached_node.split(".")[-1]: result.failures
                for result in tested.result}
    assert failures == {f"refused_{name}": 3 for name in CASES}
