"""Logging: JSON lines in production, stdlib (livekit) routed in, secrets never printed."""

from __future__ import annotations

import io
import json
import logging
import sys

import pytest

from syncagents.log import logger, redact, setup_logging


@pytest.fixture()
def json_stream() -> "io.StringIO":  # noqa: UP037
    stream = io.StringIO()
    setup_logging("DEBUG", "json", stream=stream)
    yield stream
    setup_logging("INFO", "pretty", stream=sys.stderr)


def _records(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def test_json_lines_with_job_id(json_stream: io.StringIO) -> None:
    logger.bind(job_id="AJ_1").info("job {} started", "AJ_1")
    rec = _records(json_stream)[-1]
    assert rec["level"] == "INFO"
    assert rec["message"] == "job AJ_1 started"
    assert rec["job_id"] == "AJ_1"


def test_stdlib_loggers_are_routed(json_stream: io.StringIO) -> None:
    logging.getLogger("livekit").warning("ffi says %s", "hi")
    rec = _records(json_stream)[-1]
    assert rec["logger"] == "livekit"
    assert rec["level"] == "WARNING"
    assert rec["message"] == "ffi says hi"


def test_levels_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    stream = io.StringIO()
    monkeypatch.setenv("SYNCAGENTS_LOG_LEVEL", "warning")
    setup_logging(fmt="json", stream=stream)
    logger.info("hidden")
    logger.warning("shown")
    setup_logging("INFO", "pretty", stream=sys.stderr)
    assert [r["message"] for r in _records(stream)] == ["shown"]


def test_bad_level_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown log level"):
        setup_logging("LOUD", "json", stream=io.StringIO())


def test_redact() -> None:
    assert redact("key=abc secret=s3cr3t", "s3cr3t", None, "") == "key=abc secret=***"
