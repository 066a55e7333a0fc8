"""`gemini-batch submit`: a JSONL file through one batch job."""
