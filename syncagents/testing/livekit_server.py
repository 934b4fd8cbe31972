"""A real ``livekit-server`` on loopback, for tests of whole agents.

``LiveKitServer`` finds the server binary (``$LIVEKIT_SERVER_BIN``, ``livekit-server`` on
``PATH``, a cached build), or builds it once from its Go module, starts it with a generated
config (random key, a 43-character secret, free ports, loopback only, no outside address
looked up) and stops it again, always. Everything about a server that fails to start or dies
is reported with the tail of its own log, never as a hang.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

__all__ = [
    "SERVER_MODULE",
    "SERVER_VERSION",
    "LiveKitServer",
    "LiveKitServerError",
    "find_server_binary",
]

# The newest tag whose go.mod has no ``replace`` directive: ``go install pkg@version`` refuses
# modules that carry one, and every later tag does (NOTES.md).
SERVER_VERSION = "v1.13.5"
SERVER_MODULE = "github.com/livekit/livekit-server/cmd/server"
BUILD_TIMEOUT = 1800.0  # the first build downloads a few hundred modules; minutes on 2 cores
LOG_TAIL_LINES = 40


class LiveKitServerError(RuntimeError):
    """The server binary can't be found or built, or the server failed to start or died."""


def cache_dir() -> Path:
    """Where a server built here is kept: ``$SYNCAGENTS_CACHE_DIR`` or ``~/.cache/syncagents``."""
    base = os.environ.get("SYNCAGENTS_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "syncagents"
    )
    return Path(base) / f"livekit-server-{SERVER_VERSION}"


def _tail(text: str, lines: int = LOG_TAIL_LINES, width: int = 400) -> str:
    # the server logs whole SDP offers on one line: cut long lines so the tail stays readable
    tail = text.rstrip().splitlines()[-lines:]
    return "\n".join(line if len(line) <= width else line[:width] + " …" for line in tail)


def find_server_binary(build: bool = True) -> str:
    """The path of a ``livekit-server`` binary: ``$LIVEKIT_SERVER_BIN``, else ``livekit-server``
    on ``PATH``, else the cache, else (``build=True``) a fresh ``go install`` into the cache.

    Raises :class:`LiveKitServerError` naming what to install when there is neither a binary
    nor Go, and with the tail of Go's output when the build fails.
    """
    explicit = os.environ.get("LIVEKIT_SERVER_BIN")
    if explicit:
        if os.path.isfile(explicit) and os.access(explicit, os.X_OK):
            return explicit
        raise LiveKitServerError(f"LIVEKIT_SERVER_BIN={explicit} is not an executable file")
    on_path = shutil.which("livekit-server")
    if on_path:
        return on_path
    cached = cache_dir() / "livekit-server"
    if cached.is_file():
        return str(cached)
    go = shutil.which("go")
    if go is None or not build:
        raise LiveKitServerError(
            "livekit-server not found: set LIVEKIT_SERVER_BIN to a livekit-server binary, put "
            "livekit-server on PATH (a release from github.com/livekit/livekit), or install Go "
            f">= 1.26 so syncagents can build {SERVER_MODULE}@{SERVER_VERSION}"
        )
    return _build(go, cached)


def _build(go: str, target: Path) -> str:
    target.parent.mkdir(parents=True, exist_ok=True)
    with _file_lock(target.parent / ".build.lock"):
        if target.is_file():  # another process built it while we waited for the lock
            return str(target)
        with tempfile.TemporaryDirectory(dir=target.parent) as gobin:
            env = dict(os.environ, GOBIN=gobin)
            try:
                proc = subprocess.run(
                    [go, "install", f"{SERVER_MODULE}@{SERVER_VERSION}"],
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    text=True,
                    timeout=BUILD_TIMEOUT,
                    check=False,
                )
            except subprocess.TimeoutExpired as exc:
                output = exc.output if isinstance(exc.output, str) else ""
                raise LiveKitServerError(
                    f"go install {SERVER_MODULE}@{SERVER_VERSION} did not finish within "
                    f"{BUILD_TIMEOUT:.0f} s:\n{_tail(output)}"
                ) from None
            built = Path(gobin) / "server"
            if proc.returncode != 0 or not built.is_file():
                raise LiveKitServerError(
                    f"go install {SERVER_MODULE}@{SERVER_VERSION} failed "
                    f"(exit {proc.returncode}):\n{_tail(proc.stdout)}"
                )
            os.replace(built, target)  # atomic: a reader never sees half a binary
    return str(target)


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    import fcntl

    with open(path, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


# -- ports ---------------------------------------------------------------------------------------


def _free_tcp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _free_udp_range(size: int, attempts: int = 200) -> tuple[int, int]:
    """A run of ``size`` consecutive UDP ports that are free now (checked by binding each)."""
    rng = random.Random()
    for _ in range(attempts):
        start = rng.randrange(20000, 60000 - size)
        held: list[socket.socket] = []
        try:
            for port in range(start, start + size):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                held.append(s)
                s.bind(("127.0.0.1", port))
        except OSError:
            continue
        finally:
            for s in held:
                s.close()
        return start, start + size - 1
    raise LiveKitServerError(f"no run of {size} free UDP ports found")


# -- the server ----------------------------------------------------------------------------------


class LiveKitServer:
    """A real ``livekit-server`` on 127.0.0.1 for the length of a ``with`` block.

    ``url`` (``ws://``) is what workers and ``rtc.Room.connect`` take, ``http_url`` what the
    server API takes; ``api_key``/``api_secret`` are generated for this server only. Rooms
    close ``empty_timeout`` seconds after they were created with nobody in them and
    ``departure_timeout`` seconds after the last participant left (livekit-server's default,
    20 s: the server tells others that a participant who never published left only in its
    3-second batch of updates, so a shorter departure timeout closes the room under an agent
    before it learns that its user is gone).

    ``port`` fixes the HTTP/WebSocket port (default: a free one).
    ``restart()`` stops the server and starts it again on the same ports and keys (to test
    what a worker does when its server goes away). ``check()`` raises, with the tail of the
    server's log, if the process died.
    """

    def __init__(
        self,
        *,
        binary: str | None = None,
        port: int = 0,
        empty_timeout: int = 60,
        departure_timeout: int = 20,
        udp_ports: int = 64,
        log_level: str = "info",
        start_timeout: float = 30.0,
    ) -> None:
        self.api_key = "API" + secrets.token_hex(6)
        # ≥ 32 characters: livekit-server refuses shorter secrets outside --dev
        self.api_secret = secrets.token_urlsafe(32)
        self._binary = binary
        self._empty_timeout = empty_timeout
        self._departure_timeout = departure_timeout
        self._udp_ports = udp_ports
        self._log_level = log_level
        self._start_timeout = start_timeout
        self._proc: subprocess.Popen[bytes] | None = None
        self._dir: tempfile.TemporaryDirectory[str] | None = None
        self._log_file: Path | None = None
        self.port = port  # 0: a free port, chosen at start
        self.rtc_tcp_port = 0
        self.udp_range = (0, 0)

    # -- addresses --------------------------------------------------------------------------
    @property
    def url(self) -> str:
        """``ws://127.0.0.1:<port>``: for workers and ``rtc.Room.connect``."""
        return f"ws://127.0.0.1:{self.port}"

    @property
    def http_url(self) -> str:
        """``http://127.0.0.1:<port>``: for the server API."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        """The server process id while it runs."""
        return None if self._proc is None else self._proc.pid

    # -- life -------------------------------------------------------------------------------
    def __enter__(self) -> LiveKitServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def start(self) -> None:
        """Start the server and wait until it answers (``start_timeout`` seconds at most)."""
        if self._proc is not None:
            raise RuntimeError("the server is already running")
        binary = self._binary or find_server_binary()
        if self._dir is None:
            self._dir = tempfile.TemporaryDirectory(prefix="livekit-server-")
            self.port = self.port or _free_tcp_port()
            self.rtc_tcp_port = _free_tcp_port()
            self.udp_range = _free_udp_range(self._udp_ports)
        workdir = Path(self._dir.name)
        config = workdir / "config.yaml"
        # JSON is YAML: no YAML writer needed for a config this flat
        config.write_text(json.dumps(self._config(), indent=2))
        self._log_file = workdir / "server.log"
        with open(self._log_file, "ab") as log:  # the child keeps its own descriptor
            try:
                self._proc = subprocess.Popen(
                    [binary, "--config", str(config)],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=workdir,
                    start_new_session=True,  # a Ctrl-C meant for the tests can't race our stop
                )
            except OSError as exc:
                raise LiveKitServerError(f"could not start {binary}: {exc}") from None
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def _config(self) -> dict[str, object]:
        return {
            "port": self.port,
            "bind_addresses": ["127.0.0.1"],
            "rtc": {
                "tcp_port": self.rtc_tcp_port,
                "port_range_start": self.udp_range[0],
                "port_range_end": self.udp_range[1],
                "use_external_ip": False,
                "node_ip": "127.0.0.1",
                "enable_loopback_candidate": True,
                # the default STUN servers are public; an unused loopback port keeps ICE local
                "stun_servers": [f"127.0.0.1:{_free_udp_port()}"],
                "interfaces": {"includes": ["lo"]},
            },
            "keys": {self.api_key: self.api_secret},
            "room": {
                "empty_timeout": self._empty_timeout,
                "departure_timeout": self._departure_timeout,
            },
            "logging": {"level": self._log_level},
        }

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self._start_timeout
        while True:
            self.check()
            try:
                with urllib.request.urlopen(self.http_url + "/", timeout=1) as resp:
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                raise LiveKitServerError(
                    f"livekit-server did not answer on {self.http_url} within "
                    f"{self._start_timeout:.0f} s; its log ends with:\n{self.log_tail()}"
                )
            time.sleep(0.1)  # polling a port that has no event to wait on

    def check(self) -> None:
        """Raise :class:`LiveKitServerError` with the log's tail if the server has exited."""
        proc = self._proc
        if proc is not None and proc.poll() is not None:
            raise LiveKitServerError(
                f"livekit-server exited with code {proc.returncode}; its log ends with:\n"
                f"{self.log_tail()}"
            )

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the server process to exit; its exit code (``TimeoutError`` otherwise)."""
        if self._proc is None:
            raise RuntimeError("the server is not running")
        try:
            return self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise TimeoutError(f"livekit-server still running after {timeout} s") from None

    def running(self) -> bool:
        """Whether the server process is alive."""
        return self._proc is not None and self._proc.poll() is None

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        """The last ``lines`` lines of the server's log (empty before the first start)."""
        if self._log_file is None or not self._log_file.exists():
            return ""
        text = self._log_file.read_bytes()[-64 * 1024 :].decode("utf-8", "replace")
        return _tail(text, lines)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server (SIGTERM, then SIGKILL after ``timeout``) and reap it. Idempotent."""
        proc, self._proc = self._proc, None
        if proc is not None:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        proc.kill()
                    proc.wait(timeout)
            else:
                proc.wait()

    def restart(self) -> None:
        """Stop the server and start it again on the same ports and keys (rooms are lost)."""
        self.stop()
        self.start()

    def close(self) -> None:
        """Stop the server and remove its config and log."""
        self.stop()
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None

    def __del__(self) -> None:
        proc = getattr(self, "_proc", None)
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(Exception):
                proc.kill()
                proc.wait(5)

    def __repr__(self) -> str:
        state = "running" if self.running() else "stopped"
        return f"LiveKitServer(url={self.url!r}, {state})"


def main() -> int:
    """``python livekit_server.py``: print the server binary's path, building it if needed.

    This file uses the standard library only, so ``.ci/run`` (and users) can run it by path
    before anything is installed.
    """
    try:
        print(find_server_binary())
    except LiveKitServerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
