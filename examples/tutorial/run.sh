#!/usr/bin/env bash
# The tutorial's two batch runs (text, then multimodal) with `gemini-batch submit`.
# Needs a Google Cloud project and bucket, or the local stack:
#   eval "$(gemini-batch local start)"     # STORAGE_EMULATOR_HOST, the Vertex endpoint...
#   bash examples/tutorial/run.sh
# OUTPUT_BUCKET_URI defaults to the local stack's tutorial bucket.
set -euo pipefail
cd "$(dirname "$0")"

project="${GEMINI_BATCH_PROJECT:?set GEMINI_BATCH_PROJECT (the local stack prints it)}"
output="${OUTPUT_BUCKET_URI:-gs://$project-batch-processing-output}"
model="${MODEL:-gemini-2.5-flash}"
mkdir -p results

for name in batch_request_text batch_request_multimodal; do
  echo "--- $name"
  gemini-batch submit "${name}_input.jsonl" --output "$output" --model "$model" \
    --download "results/${name}_output.jsonl" --ledger results/submit-jobs.jsonl
done
