"""Run bqemulator (``python -m gemini_batch.local.bqemulator_main start ...``).

The same as ``python -m bqemulator``, with one fix: google-cloud-bigquery sends the
data part of a multipart load-job upload as ``Content-Type: */*``, which BigQuery
accepts and bqemulator 1.4 refuses ("multipart upload's second part has unsupported
Content-Type '*/*'"). Without it ``Client.load_table_from_json``,
``load_table_from_dataframe``, small ``load_table_from_file`` uploads and
``pandas_gbq.to_gbq`` all fail against the emulator.
"""

from __future__ import annotations

from bqemulator.api.routes import upload
from bqemulator.cli import main

# The module reads the tuple at each upload, so extending it here is enough.
upload._PERMITTED_MEDIA_CONTENT_TYPES = (*upload._PERMITTED_MEDIA_CONTENT_TYPES, "*/*")

if __name__ == "__main__":
    main()
