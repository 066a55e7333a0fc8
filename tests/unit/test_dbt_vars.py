"""The vars the operator reads are the ones a model of the project sees."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from gemini_batch.build.dbt_options import DbtOptions
from gemini_batch.build.dbt_project import DbtProject
from gemini_batch.rules.config import ledger_dataset
from gemini_batch.rules.pricing import PriceTable
from helpers.offline_profile import offline_profile


def _project(root: Path) -> None:
    (root / "dbt_project.yml").write_text(textwrap.dedent("""\
        name: probe
        version: "1.0"
        config-version: 2
        profile: probe
        vars:
          gemini_batch_prices:
            my-tuned-gemini: {input: 0.5, output: 3.0}
          gemini_batch:
            gemini_batch_ledger_dataset: llm_ops
          probe:
            team: data
        """))
    (root / "profiles.yml").write_text(offline_profile("probe"))


@pytest.mark.parametrize("cli_vars", [None, "{gemini_batch_ledger_dataset: from_cli}"])
def test_project_vars_are_read_and_cli_vars_win(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli_vars: str | None
) -> None:
    monkeypatch.setenv("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
    _project(tmp_path)
    project = DbtProject(DbtOptions(project_dir=str(tmp_path), profiles_dir=str(tmp_path),
                                    vars=cli_vars))
    project.parse()
    dbt_vars = project.vars
    assert PriceTable.from_vars(dbt_vars).price_for("my-tuned-gemini") is not None
    assert dbt_vars["team"] == "data"
    expected = "from_cli" if cli_vars else "llm_ops"
    assert ledger_dataset(dbt_vars, "d") == expected
