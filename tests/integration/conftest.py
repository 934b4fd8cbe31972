"""Integration tests against a real ``livekit-server`` and an independent user.

The server is built (or found) once per session by ``syncagents.testing.LiveKitServer``. The
user side of every test is ``user_client.py``: livekit's own asyncio SDK in a separate process.
Agents run either in this process (``Worker``, the blocking rtc facade) or as the ``syncagents``
CLI in a subprocess. Every wait has a timeout; a failing test carries the tail of the server's
log, and the test fails (never hangs) if the server dies.

Without a server binary and without Go the tests skip, except where ``CI`` or
``SYNCAGENTS_REQUIRE_SERVER`` is set: there a skip would prove nothing, so they fail.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from livekit import api as lkapi

import syncagents  # noqa: F401  (patches gevent before the rest)
from syncagents.testing.livekit_server import LiveKitServer, LiveKitServerError

HERE = Path(__file__).parent
ROOT = HERE.parent.parent
USER_CLIENT = HERE / "user_client.py"
EVENT_TIMEOUT = 30.0  # one step of a conversation on a loaded 2-core machine

# Reading subprocess pipes from real threads, not greenlets: a pytest test blocks the hub in
# plain waits, and these readers must keep draining meanwhile (a full pipe would stall the
# child). They only put lines in a queue.Queue built on real locks.
_real_thread = __import__("gevent.monkey", fromlist=["get_original"]).get_original(
    "threading", "Thread"
)
_RealQueue = __import__("gevent.monkey", fromlist=["get_original"]).get_original(
    "queue", "Queue"
)


def _required() -> bool:
    return bool(os.environ.get("CI") or os.environ.get("SYNCAGENTS_REQUIRE_SERVER"))


@pytest.fixture(scope="session")
def livekit_server() -> Iterator[LiveKitServer]:
    try:
        server = LiveKitServer()
        server.start()
    except LiveKitServerError as exc:
        if _required():
            pytest.fail(f"the real livekit-server is required here: {exc}", pytrace=False)
        pytest.skip(str(exc))
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(autouse=True)
def _server_alive(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "livekit_server" in request.fixturenames:
        server: LiveKitServer = request.getfixturevalue("livekit_server")
        server.check()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if report.failed and "livekit_server" in getattr(item, "fixturenames", ()):
        server = item.funcargs.get("livekit_server")  # type: ignore[attr-defined]
        if isinstance(server, LiveKitServer):
            report.sections.append(("livekit-server log (tail)", server.log_tail()))


def room_name(prefix: str = "room") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def user_token(
    server: LiveKitServer, room: str, identity: str = "user", **attributes: str
) -> str:
    grants = lkapi.VideoGrants(room_join=True, room=room, can_publish=True,
                               can_subscribe=True, can_publish_data=True,
                               can_update_own_metadata=True)
    token = (
        lkapi.AccessToken(server.api_key, server.api_secret)
        .with_identity(identity)
        .with_name(identity)
        .with_grants(grants)
    )
    if attributes:
        token = token.with_attributes(attributes)
    return token.to_jwt()


class LineReader:
    """Lines of a subprocess pipe, read on a real thread, waited on with timeouts."""

    def __init__(self, pipe: Any, name: str) -> None:
        self.name = name
        self.lines: list[str] = []
        self._queue: Any = _RealQueue()
        self._thread = _real_thread(target=self._read, args=(pipe,), daemon=True)
        self._thread.start()

    def _read(self, pipe: Any) -> None:
        for raw in iter(pipe.readline, b""):
            self._queue.put(raw.decode("utf-8", "replace").rstrip("\n"))
        self._queue.put(None)

    def next_line(self, timeout: float) -> str | None:
        """The next line; ``None`` at end of output; ``TimeoutError`` after ``timeout``.

        Polls the real queue in short slices, yielding to the hub between them, so greenlets
        of an in-process agent keep running while a test waits.
        """
        import gevent

        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._queue.get(timeout=0.01)
            except queue.Empty:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{self.name}: no line within {timeout} s") from None
                gevent.sleep(0.01)
                continue
            if line is not None:
                self.lines.append(line)
            return line  # type: ignore[no-any-return]


class UserClient:
    """The remote-controlled independent user (``user_client.py``)."""

    def __init__(self, server: LiveKitServer, room: str, identity: str = "user",
                 **attributes: str) -> None:
        self.room = room
        self.identity = identity
        token = user_token(server, room, identity, **attributes)
        self.proc = subprocess.Popen(
            [sys.executable, str(USER_CLIENT), "--url", server.url, "--token", token],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            cwd=HERE,
        )
        self._out = LineReader(self.proc.stdout, f"user {identity}")
        self._err = LineReader(self.proc.stderr, f"user {identity} stderr")
        self.events: list[dict[str, Any]] = []

    def send(self, cmd: str, **fields: Any) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps({"cmd": cmd, **fields}) + "\n").encode())
        self.proc.stdin.flush()

    def wait_for(
        self,
        event: str,
        where: Callable[[dict[str, Any]], bool] | None = None,
        timeout: float = EVENT_TIMEOUT,
    ) -> dict[str, Any]:
        """The first event named ``event`` (seen before or arriving) that ``where`` accepts."""
        for ev in self.events:
            if ev["event"] == event and (where is None or where(ev)):
                self.events.remove(ev)
                return ev
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                line = self._out.next_line(max(left, 0.0))
            except TimeoutError:
                raise AssertionError(
                    f"user {self.identity}: no {event!r} event within {timeout} s; events so far:"
                    f" {[e['event'] for e in self.events]}\nstderr:\n{self.stderr_tail()}"
                ) from None
            if line is None:
                raise AssertionError(
                    f"user {self.identity} exited ({self.proc.wait(5)}) before {event!r};\n"
                    f"stderr:\n{self.stderr_tail()}"
                )
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            if ev["event"] == event and (where is None or where(ev)):
                return ev
            self.events.append(ev)

    def collected(self, event: str) -> list[dict[str, Any]]:
        """Events named ``event`` received so far without being waited for."""
        return [e for e in self.events if e["event"] == event]

    def stderr_tail(self, lines: int = 30) -> str:
        try:
            while self._err.next_line(0.05) is not None:
                pass
        except TimeoutError:
            pass
        return "\n".join(self._err.lines[-lines:])

    def leave(self, timeout: float = 15) -> None:
        if self.proc.poll() is None:
            try:
                self.send("leave")
                self.wait_for("left", timeout=timeout)
            except (AssertionError, OSError):
                pass
        self.close()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        for pipe in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()


@pytest.fixture
def user_factory(livekit_server: LiveKitServer) -> Iterator[Callable[..., UserClient]]:
    users: list[UserClient] = []

    def make(room: str, identity: str = "user", **attributes: str) -> UserClient:
        u = UserClient(livekit_server, room, identity, **attributes)
        users.append(u)
        u.wait_for("connected")
        return u

    yield make
    for u in users:
        u.close()


class WorkerProcess:
    """``syncagents run APP`` against the server, JSON logs read line by line."""

    def __init__(self, server: LiveKitServer, app: str, *args: str,
                 command: str = "run", env: dict[str, str] | None = None) -> None:
        full_env = {
            **os.environ,
            "LIVEKIT_URL": server.url,
            "LIVEKIT_API_KEY": server.api_key,
            "LIVEKIT_API_SECRET": server.api_secret,
            **(env or {}),
        }
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "syncagents.cli", command, app, "--log-format", "json",
             "--health-port", "0", *args],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            env=full_env, cwd=ROOT,
        )
        self._out = LineReader(self.proc.stdout, "worker")
        self.records: list[dict[str, Any]] = []

    def wait_log(self, contains: str, timeout: float = EVENT_TIMEOUT, n: int = 1) -> dict[str, Any]:
        """The ``n``-th log record (seen or arriving) whose message contains ``contains``."""
        deadline = time.monotonic() + timeout
        while True:
            found = [r for r in self.records if contains in r.get("message", "")]
            if len(found) >= n:
                return found[n - 1]
            try:
                line = self._out.next_line(max(deadline - time.monotonic(), 0.0))
            except TimeoutError:
                raise AssertionError(
                    f"worker: {len(found)} log(s) containing {contains!r}, not {n}, within "
                    f"{timeout} s; log tail:\n" + self.tail()
                ) from None
            if line is None:
                raise AssertionError(
                    f"worker exited ({self.proc.wait(5)}) before logging {contains!r}:\n"
                    + self.tail()
                )
            self.records.append(_parse_record(line))

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self._out.lines[-lines:])

    def wait_exit(self, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None:
            try:
                line = self._out.next_line(max(deadline - time.monotonic(), 0.0))
            except TimeoutError:
                raise AssertionError(
                    f"worker still running after {timeout} s:\n{self.tail()}"
                ) from None
            if line is None:
                break
            self.records.append(_parse_record(line))
        return self.proc.wait(max(deadline - time.monotonic(), 1.0))

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def _parse_record(line: str) -> dict[str, Any]:
    try:
        rec = json.loads(line)
    except ValueError:
        return {"message": line}
    if isinstance(rec, dict) and "record" in rec:  # loguru's serialize format
        inner = rec["record"]
        return {"message": inner.get("message", ""), "level": inner["level"]["name"],
                "extra": inner.get("extra", {})}
    return rec if isinstance(rec, dict) else {"message": line}


@pytest.fixture
def worker_factory(livekit_server: LiveKitServer) -> Iterator[Callable[..., WorkerProcess]]:
    workers: list[WorkerProcess] = []

    def make(app: str, *args: str, **kwargs: Any) -> WorkerProcess:
        w = WorkerProcess(livekit_server, app, *args, **kwargs)
        workers.append(w)
        return w

    yield make
    for w in workers:
        w.stop()


SERVER_API = HERE / "server_api.py"


def server_api(server: LiveKitServer, action: str, *args: str, timeout: float = 30) -> Any:
    """Call the server API the way a user's backend does (livekit.api, another process)."""
    proc = subprocess.run(
        [sys.executable, str(SERVER_API), "--url", server.http_url, "--key", server.api_key,
         "--secret", server.api_secret, action, *args],
        capture_output=True, text=True, timeout=timeout, check=False,
    )
    if proc.returncode != 0:
        raise AssertionError(f"server API {action} failed: {proc.stderr[-2000:]}")
    return json.loads(proc.stdout)


def spoken_wav(path: Path, text: str) -> Path:
    """``text`` spoken by espeak-ng, written as a 16 kHz mono WAV at ``path``."""
    sys.path.insert(0, str(ROOT / "tests"))
    from speech import speak, write_wav

    write_wav(str(path), speak(text))
    return path


def transcribe(path: Path) -> str:
    """What pocketsphinx hears in a WAV file (any rate, mono 16-bit)."""
    import wave

    import numpy as np

    from syncagents import rtc
    from syncagents.plugins import pocketsphinx

    with wave.open(str(path), "rb") as w:
        rate = w.getframerate()
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
    per = rate // 100
    frames = [
        rtc.AudioFrame(pcm[i : i + per].tobytes(), rate, 1, per)
        for i in range(0, len(pcm) - per + 1, per)
    ]
    event = pocketsphinx.STT().recognize(frames)
    return str(event.alternatives[0].text) if event.alternatives else ""
