"""The local stack: a BigQuery emulator and a Vertex AI batch prediction emulator on 127.0.0.1."""
