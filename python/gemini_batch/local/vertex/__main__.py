"""``python -m gemini_batch.local.vertex``: run the Vertex AI batch prediction emulator."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from gemini_batch.local.vertex.engines import make_engine, settings_from_env
from gemini_batch.local.vertex.faults import (
    SETTING_NAMES,
    SETTINGS,
    FaultError,
    Faults,
    setting_from_text,
)
from gemini_batch.local.vertex.runner import PAGE_SIZE


def _parser() -> argparse.ArgumentParser:
    env = os.environ.get
    engine, engine_settings = settings_from_env()
    parser = argparse.ArgumentParser(
        prog="python -m gemini_batch.local.vertex",
        description="Vertex AI batch prediction emulator (BigQuery tables or Cloud Storage "
        "JSONL, in and out).",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8086)
    parser.add_argument(
        "--data-dir", type=Path, required=True, help="Where job state is kept (survives restarts)."
    )
    parser.add_argument(
        "--project",
        default="local-project",
        help="The default project (jobs may name any project).",
    )
    parser.add_argument(
        "--bigquery-endpoint",
        required=True,
        help="BigQuery REST endpoint jobs read and write through, e.g. http://127.0.0.1:9050.",
    )
    parser.add_argument(
        "--bigquery-grpc-endpoint",
        help="host:port of BigQuery's gRPC API: input tables are then read with the "
        "Storage Read API, several times faster than tabledata.list.",
    )
    parser.add_argument(
        "--storage-endpoint",
        default=env("STORAGE_EMULATOR_HOST"),
        help="Cloud Storage endpoint JSONL jobs read and write through (env "
        "STORAGE_EMULATOR_HOST; unset: Google's).",
    )
    parser.add_argument(
        "--engine",
        choices=("simulate", "openai"),
        default=engine,
        help="How rows are answered (env GEMINI_BATCH_ENGINE).",
    )
    parser.add_argument(
        "--model",
        action="append",
        default=[],
        metavar="ID",
        help="Accept jobs for this model id too (repeatable).",
    )
    parser.add_argument(
        "--max-running-jobs",
        type=int,
        default=4,
        help="Jobs processed at once; the others stay QUEUED.",
    )
    parser.add_argument(
        "--page-size",
        type=int,
        default=PAGE_SIZE,
        help="Input rows read (and output rows written) per BigQuery call.",
    )
    parser.add_argument("--log-level", default=env("GEMINI_BATCH_VERTEX_LOG_LEVEL") or "info")

    openai = parser.add_argument_group("openai engine")
    openai.add_argument(
        "--openai-base-url",
        default=engine_settings["base_url"],
        help="OpenAI-compatible API root (env GEMINI_BATCH_OPENAI_BASE_URL).",
    )
    openai.add_argument(
        "--openai-model",
        default=engine_settings["model"],
        help="Model to call (env GEMINI_BATCH_OPENAI_MODEL); default: the "
        "first one the server lists.",
    )
    openai.add_argument(
        "--openai-api-key",
        default=engine_settings["api_key"],
        help="Bearer token, if the server wants one (env GEMINI_BATCH_OPENAI_API_KEY).",
    )
    openai.add_argument(
        "--openai-concurrency",
        type=int,
        default=engine_settings["concurrency"],
        help="Requests in flight at once (env GEMINI_BATCH_OPENAI_CONCURRENCY).",
    )
    openai.add_argument(
        "--openai-timeout",
        type=float,
        default=engine_settings["timeout"],
        help="Seconds per request (env GEMINI_BATCH_OPENAI_TIMEOUT).",
    )

    faults = parser.add_argument_group(
        "fault injection and emulated time (also GEMINI_BATCH_FAULT_<NAME> env vars and "
        "PUT /emulator/faults)"
    )
    for name, help_text in SETTINGS.items():
        faults.add_argument(f"--fault-{name.replace('_', '-')}", metavar="VALUE", help=help_text)
    return parser


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    from gemini_batch.local.vertex.server import EmulatorConfig, create_app

    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # One line per BigQuery call is noise at info level.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    settings = Faults.from_env()
    for name in SETTING_NAMES:
        value = getattr(args, f"fault_{name}")
        if value is not None:
            settings[name] = setting_from_text(name, value)
    try:
        faults = Faults.from_dict(settings)
    except FaultError as exc:
        sys.exit(f"error: {exc}")
    engine = make_engine(
        args.engine,
        base_url=args.openai_base_url,
        model=args.openai_model,
        api_key=args.openai_api_key,
        concurrency=args.openai_concurrency,
        timeout=args.openai_timeout,
    )
    config = EmulatorConfig(
        data_dir=args.data_dir,
        project=args.project,
        bigquery_endpoint=args.bigquery_endpoint,
        bigquery_grpc_endpoint=args.bigquery_grpc_endpoint,
        engine=engine,
        faults=faults,
        extra_models=frozenset(args.model),
        max_running_jobs=args.max_running_jobs,
        page_size=args.page_size,
        storage_endpoint=args.storage_endpoint,
    )
    app = create_app(config)
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_level=args.log_level.lower(),
        access_log=args.log_level.lower() == "debug",
    )


if __name__ == "__main__":
    main()
