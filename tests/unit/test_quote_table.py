"""Table names from config become quoted SQL identifiers, or an error: never pasted."""

from __future__ import annotations

import pytest

from gemini_batch.clients.bigquery import quote_table


def test_quote_table() -> None:
    assert quote_table("my-project.analytics.out") == "`my-project`.`analytics`.`out`"
    for bad in ["analytics.out", "p.d.t.x", "p.d.", "p.d.t`; drop table x; --", "p.d.a\nb"]:
        with pytest.raises(ValueError):
            quote_table(bad)
