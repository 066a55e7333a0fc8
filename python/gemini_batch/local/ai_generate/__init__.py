"""BigQuery's ``AI.GENERATE`` on the local BigQuery (bqemulator on DuckDB).

- ``sql``: a statement's ``AI.GENERATE(...)`` calls rewritten into calls of a DuckDB
  Python function, before bqemulator translates the statement (its arguments checked as
  BigQuery checks them);
- ``schema``: ``output_schema`` ('name TYPE, ...') as the function's STRUCT type, the
  response schema sent to the model, and the answer's values typed;
- ``rows``: that function: one GenerateContentRequest per row, answered by the Vertex AI
  emulator's engine through its one entry point (``local/vertex/generate.py``), each
  answer as BigQuery returns it (result or typed fields, full_response, status), the
  faults and what was answered (``GET /emulator/ai_generate``).
"""
