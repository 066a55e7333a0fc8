"""Rules: what the service accepts, what counts as an answer, prices (no I/O)."""
