#!/usr/bin/env bash
# `make demo`: the recipes example end to end on the local stack.
#   1. start the local BigQuery and Vertex AI emulators
#   2. a plain `dbt build` of dessert_tips (route ai_generate): answered by AI.GENERATE
#   3. gemini-batch build: seeds, request models, batch jobs, downstream models
#   4. show a few answers
#   5. build again: everything is cached, nothing is submitted
#   6. the tutorial's JSONL flow: gemini-batch submit of its two files (examples/tutorial)
#   7. stop the stack (also on failure or Ctrl-C)
set -euo pipefail
cd "$(dirname "$0")/recipes"

data_dir="$(pwd)/../../.gemini_batch/demo"
step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

step "Starting the local stack (BigQuery emulator + Vertex AI batch emulator)"
# A fresh demo every time: the emulators' data from an earlier demo is removed.
gemini-batch local stop --data-dir "$data_dir" >/dev/null 2>&1 || true
rm -rf "$data_dir"
trap 'step "Stopping the local stack"; gemini-batch local stop --data-dir "$data_dir"' EXIT
eval "$(gemini-batch local start --data-dir "$data_dir" 2>/dev/null)"
echo "BigQuery emulator:  $BIGQUERY_ENDPOINT"
echo "Vertex AI emulator: $GEMINI_BATCH_VERTEX_ENDPOINT"
echo "Cloud Storage:      $STORAGE_EMULATOR_HOST"

step "dbt deps (installs the gemini_batch package from this repository)"
dbt deps --profiles-dir . --project-dir . --quiet

step "A plain dbt build answers dessert_tips (route ai_generate: BigQuery's AI.GENERATE, no gemini-batch)"
dbt build --profiles-dir . --project-dir . --select +dessert_tips
dbt show --profiles-dir . --project-dir . --quiet --limit 3 --inline \
  "select dessert, batch_state, {{ gemini_batch.response_text('response') }} as tip
   from {{ ref('dessert_tips') }} order by dessert_id"

step "gemini-batch build (first run: every request is submitted)"
gemini-batch build --profiles-dir . --project-dir .

step "A few answers (dbt show on the downstream models)"
dbt show --profiles-dir . --project-dir . --quiet --limit 3 --inline \
  "select dessert, finish_reason, total_tokens, substr(recipe_text, 1, 70) as recipe_start
   from {{ ref('recipe_texts') }} order by dessert_id"
dbt show --profiles-dir . --project-dir . --quiet --limit 3 --inline \
  "select title, servings, minutes, array_length(ingredients) as n_ingredients
   from {{ ref('structured_recipe_fields') }} order by dessert_id"

step "gemini-batch build again (nothing changed: nothing is submitted)"
gemini-batch build --profiles-dir . --project-dir .

step "The tutorial's flow: its two JSONL files through gemini-batch submit (Cloud Storage)"
rm -rf ../tutorial/results
bash ../tutorial/run.sh
