"""The notes under `gemini-batch plan`: a model that waits on another's answers says so
instead of "nothing to submit"; one whose inputs are missing names them (no server)."""

from __future__ import annotations

from gemini_batch.build.plan import ModelPlan
from gemini_batch.display import plan_notes
from gemini_batch.rules.config import BatchModel, BatchModelConfig
from gemini_batch.state.warehouse import RequestCounts


def _model(name: str) -> BatchModel:
    return BatchModel(unique_id=f"model.p.{name}", name=name, project="p", dataset="d",
                      config=BatchModelConfig(gemini_model="gemini-2.5-flash"))


def test_a_model_waiting_on_answers_says_how_many_not_nothing_to_submit() -> None:
    empty = RequestCounts(total=0, unique=0, cached=0, pending=0, failed=0, invalid=0,
                          in_flight=0)
    notes = plan_notes([ModelPlan(model=_model("follow_ups"), built=True, counts=empty,
                                  waits_on={"questions": 1, "triage": None})])
    assert notes == [
        "follow_ups: waits on the answers of questions (1 request without an answer yet), "
        "triage (not built yet): its requests are final only after them (`gemini-batch "
        "build` answers them first); the figures are of its requests as they stand now."]


def test_missing_inputs_are_named_with_what_to_run() -> None:
    notes = plan_notes([ModelPlan(model=_model("questions"), built=False,
                                  from_sql="its tables are not built yet",
                                  missing_inputs=["p.d.prompts"])])
    assert notes == [
        "questions: its tables are not built yet, and its inputs p.d.prompts do not exist: "
        "build them first (a plain `dbt run --select +questions` sends nothing), then plan "
        "again."]

