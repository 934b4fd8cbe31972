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
    setup_logging("INFO", "pretty", stream=sys.__stderr__)  # not the capture pytest closes


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
    setup_logging("INFO", "pretty", stream=sys.__stderr__)  # not the capture pytest closes
    assert [r["message"] for r in _records(stream)] == ["shown"]


def test_bad_level_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown log level"):
        setup_logging("LOUD", "json", stream=io.StringIO())


def test_redact() -> None:
    assert redact("key=abc secret=s3cr3t", "s3cr3t", None, "") == "key=abc secret=***"


def test_redact_masks_whole_tokens_only() -> None:
    from syncagents.log import redact

    # livekit-server's dev secret is "secret": words that contain it stay readable
    assert redact("ConnectionRefusedError: secrets", "s") == "ConnectionRefusedError: secrets"
    assert redact("api_secret=secret; retry", "secret") == "api_secret=***; retry"
    assert redact("key s rejected", "s") == "key *** rejected"


def test_redact_removes_every_jwt() -> None:
    from syncagents.log import redact

    jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhZ2VudCJ9.c2lnbmF0dXJl"
    assert redact(f"connect to ws://h?access_token={jwt} failed") == (
        "connect to ws://h?access_token=<jwt> failed"
    )


def test_tracebacks_from_loguru_default_handler_show_no_locals() -> None:
    import subprocess
    import sys

    code = (
        "import syncagents\n"
        "from loguru import logger\n"
        "def job(token):\n"
        "    raise ValueError('boom')\n"
        "try:\n"
        "    job('eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln')\n"
        "except ValueError:\n"
        "    logger.exception('failed')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60)
    assert "boom" in out.stderr
    assert "eyJ" not in out.stderr  # loguru's diagnose would print the token's value


# Run in a fresh interpreter: loguru must be first imported by ``import syncagents``, as in a
# user's script. The handler's holder is a native thread parked inside loguru's default
# handler; a before-fork hook (it runs just before loguru's, which takes every handler lock)
# lets it go 0.2 s later, a slow write: with gevent's locks loguru's hook raised LoopExit at
# once and released a lock it never took, with OS locks the fork waits for the write.
FORK_WHILE_A_NATIVE_THREAD_LOGS = r"""
import _thread, os, sys, time
start_thread, os_lock = _thread.start_new_thread, _thread.allocate_lock  # unpatched
inside, leave = os_lock(), os_lock()
inside.acquire(); leave.acquire()

class Stderr:
    def __init__(self):
        self.lines = []
    def write(self, text):
        self.lines.append(text)
        if "from a native thread" in text:
            inside.release()
            leave.acquire()
    def flush(self):
        pass

real_stderr, sys.stderr = sys.stderr, Stderr()
PRELUDE
import subprocess
import syncagents
from loguru import logger

start_thread(logger.info, ("from a native thread",))
assert inside.acquire(timeout=30)
def slow_write():
    time.sleep(0.2)
    leave.release()
os.register_at_fork(before=lambda: start_thread(slow_write, ()))
done = subprocess.run(["true"], timeout=30)
print(done.returncode, sum("from a native thread" in line for line in sys.stderr.lines))
real_stderr.write("".join(line for line in sys.stderr.lines if "native" not in line))
"""


@pytest.mark.parametrize(
    ("prelude", "no_patch"),
    [("", ""), ("from gevent import monkey; monkey.patch_all()", "1")],
    ids=["patched-by-syncagents", "patched-by-the-application"],
)
def test_a_fork_while_a_native_thread_logs_waits_for_it(prelude: str, no_patch: str) -> None:
    import os
    import subprocess

    out = subprocess.run(
        [sys.executable, "-c", FORK_WHILE_A_NATIVE_THREAD_LOGS.replace("PRELUDE", prelude)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "SYNCAGENTS_NO_PATCH": no_patch},
    )
    assert out.stdout.split() == ["0", "1"], out.stdout + out.stderr
    assert out.stderr == ""

