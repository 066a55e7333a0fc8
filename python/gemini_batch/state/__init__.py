"""State kept in BigQuery: a batch model's tables (warehouse) and the ledger."""
