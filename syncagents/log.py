"""Logging: loguru everywhere, pretty on a terminal, JSON lines in production.

stdlib logging (livekit's own loggers, websocket-client, urllib3) is routed into loguru.
Log calls arrive from native threads too (livekit's Rust callback thread, the asyncio
thread, ``to_thread`` workers), so every lock on the logging path is a real OS lock:
a gevent lock taken from a native thread can deadlock (NOTES.md).
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from typing import Any, TextIO

from loguru import logger

from ._bridge import real_lock
from ._patch import loguru_uses_os_locks

__all__ = ["logger", "redact", "setup_logging"]

_LEVELS = ("TRACE", "DEBUG", "INFO", "SUCCESS", "WARNING", "ERROR", "CRITICAL")


class _InterceptHandler(logging.Handler):
    """Forwards stdlib records to loguru, keeping the original logger name and level."""

    def createLock(self) -> None:
        self.lock = real_lock()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            level: str | int = logger.level(record.levelname).name
        except ValueError:
            level = record.levelno
        try:
            message = record.getMessage()
        except Exception:  # a broken %-format in a library must not kill the caller
            message = str(record.msg)
        logger.bind(logger_name=record.name).opt(exception=record.exc_info).log(
            level, "{}", message
        )


# A secret is replaced only where it stands as a whole token: livekit-server's dev secret is
# "secret", and replacing substrings turned "ConnectionRefusedError" into "ConnectionRefu***".
_TOKEN_CHARS = r"A-Za-z0-9_\-+/"
_JWT = re.compile(r"eyJ[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]*")


def redact(text: str, *secrets: str | None) -> str:
    """``text`` with every JWT replaced by ``<jwt>`` and every non-empty secret that stands as
    a whole token (not inside a longer word) by ``***``."""
    text = _JWT.sub("<jwt>", text)
    for secret in secrets:
        if secret:
            pattern = rf"(?<![{_TOKEN_CHARS}]){re.escape(secret)}(?![{_TOKEN_CHARS}])"
            text = re.sub(pattern, "***", text)
    return text


def quiet_default_handler() -> None:
    """Turn off variable values in tracebacks of loguru's default stderr handler, if it is
    still installed: with them, a traceback through a job prints its token. (The CLI installs
    its own handlers; this is for pytest and plain scripts.)"""
    try:
        logger.remove(0)
    except ValueError:  # the application configured loguru itself: its choice stands
        return
    logger.add(sys.stderr, diagnose=False)


def _json_sink(stream: TextIO) -> Any:
    def sink(message: Any) -> None:
        record = message.record
        extra = dict(record["extra"])
        out: dict[str, Any] = {
            "time": record["time"].isoformat(),
            "level": record["level"].name,
            "message": record["message"],
            "logger": extra.pop("logger_name", None) or record["name"],
        }
        job_id = extra.pop("job_id", None)
        if job_id is not None:
            out["job_id"] = job_id
        for key, value in extra.items():
            plain = isinstance(value, (str, int, float, bool, type(None)))
            out[key] = value if plain else str(value)
        if record["exception"] is not None:
            exc = record["exception"]
            import traceback

            out["exception"] = "".join(
                traceback.format_exception(exc.type, exc.value, exc.traceback)
            )
        stream.write(json.dumps(out) + "\n")
        stream.flush()

    return sink


def _pretty_format(record: Any) -> str:
    job = " <magenta>[{extra[job_id]}]</magenta>" if record["extra"].get("job_id") else ""
    name = "{extra[logger_name]}" if record["extra"].get("logger_name") else "{name}"
    exc = "\n{exception}" if record["exception"] else ""
    return (
        "<green>{time:HH:mm:ss.SSS}</green> <level>{level: <7}</level> "
        f"<cyan>{name}</cyan>{job} {{message}}{exc}\n"
    )


def setup_logging(
    level: str | None = None, fmt: str | None = None, stream: TextIO | None = None
) -> None:
    """Configure loguru once per process (safe to call again to change level/format).

    ``level`` defaults to ``$SYNCAGENTS_LOG_LEVEL`` or INFO; ``fmt`` is ``pretty`` or ``json``
    and defaults to pretty on a terminal, JSON otherwise.
    """
    stream = stream or sys.stderr
    level = (level or os.environ.get("SYNCAGENTS_LOG_LEVEL") or "INFO").upper()
    if level == "WARN":
        level = "WARNING"
    if level not in _LEVELS:
        raise ValueError(f"unknown log level {level!r} (one of {', '.join(_LEVELS)})")
    if fmt is None:
        fmt = "pretty" if stream.isatty() else "json"
    if fmt not in ("pretty", "json"):
        raise ValueError(f"unknown log format {fmt!r} (pretty or json)")
    loguru_uses_os_locks()  # the sinks added below take OS locks (see there)
    logger.remove()
    if fmt == "json":
        logger.add(_json_sink(stream), level=level, enqueue=False, catch=True)
    else:
        logger.add(
            stream,
            level=level,
            format=_pretty_format,
            colorize=stream.isatty(),
            backtrace=False,
            diagnose=False,  # diagnose prints local variables: they may hold secrets
        )
    root = logging.getLogger()
    root.handlers = [_InterceptHandler()]
    root.setLevel(logging.DEBUG if level in ("TRACE", "DEBUG") else logging.INFO)
    for name in ("livekit", "websocket", "urllib3"):
        logging.getLogger(name).handlers = []
        logging.getLogger(name).propagate = True
