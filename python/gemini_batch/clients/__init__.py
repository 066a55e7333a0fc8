"""Clients: BigQuery, Cloud Storage and Vertex AI, built in one place each."""
