"""``testing.LiveKitServer``'s bad-input paths: no binary and no Go, a failed Go build, a
server that cannot start, and a server that dies while a test runs."""

from __future__ import annotations

import os
import shutil
import signal
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from syncagents.testing.livekit_server import (
    LiveKitServer,
    LiveKitServerError,
    find_server_binary,
)


@pytest.fixture
def bare_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No LIVEKIT_SERVER_BIN, an empty cache, and a PATH with neither livekit-server nor go."""
    monkeypatch.delenv("LIVEKIT_SERVER_BIN", raising=False)
    monkeypatch.setenv("SYNCAGENTS_CACHE_DIR", str(tmp_path / "cache"))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", str(bin_dir))
    return bin_dir


def test_no_binary_and_no_go_is_one_clear_line(bare_env: Path) -> None:
    with pytest.raises(LiveKitServerError) as info:
        find_server_binary()
    message = str(info.value)
    assert "\n" not in message
    assert "LIVEKIT_SERVER_BIN" in message and "install Go" in message


def test_a_bad_livekit_server_bin_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIVEKIT_SERVER_BIN", "/nonexistent/livekit-server")
    with pytest.raises(LiveKitServerError, match="/nonexistent/livekit-server"):
        find_server_binary()


def test_a_failed_go_build_reports_the_tail_of_its_output(
    bare_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    go = shutil.which("go", path=os.defpath + ":/usr/local/go/bin:/usr/lib/go/bin")
    if go is None:
        pytest.skip("Go is not installed")
    (bare_env / "go").symlink_to(go)
    # the real Go, with the module proxy turned off and an empty module cache: it fails at once
    monkeypatch.setenv("GOPROXY", "off")
    monkeypatch.setenv("GOMODCACHE", str(tmp_path / "modcache"))
    monkeypatch.setenv("GOFLAGS", "-modcacherw")
    with pytest.raises(LiveKitServerError) as info:
        find_server_binary()
    message = str(info.value)
    assert "go install github.com/livekit/livekit-server/cmd/server@v1.13.5 failed" in message
    assert "GOPROXY=off" in message  # Go's own words, from the tail of its output
    assert not list((tmp_path / "cache").glob("**/livekit-server"))


def _server_available() -> bool:
    try:
        find_server_binary(build=False)
    except LiveKitServerError:
        return False
    return True


needs_server = pytest.mark.skipif(not _server_available(), reason="no livekit-server binary")


@pytest.fixture
def server() -> Iterator[LiveKitServer]:
    srv = LiveKitServer()
    try:
        yield srv
    finally:
        srv.close()


@needs_server
def test_a_server_that_cannot_start_fails_with_its_log() -> None:
    with socket.socket() as blocker:  # its HTTP port is taken by someone else
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        server = LiveKitServer(port=blocker.getsockname()[1], start_timeout=20)
        try:
            with pytest.raises(LiveKitServerError) as info:
                server.start()
        finally:
            server.close()
    message = str(info.value)
    assert "livekit-server exited with code" in message
    assert "address already in use" in message  # from the tail of the server's own log
    assert not server.running()


@needs_server
def test_a_server_that_dies_is_reported_with_its_log(server: LiveKitServer) -> None:
    server.start()
    assert server.running()
    server.check()  # alive: no error
    assert server.pid is not None
    os.kill(server.pid, signal.SIGKILL)
    assert server.wait(10) == -signal.SIGKILL
    with pytest.raises(LiveKitServerError) as info:
        server.check()
    message = str(info.value)
    assert "exited with code -9" in message
    assert "starting LiveKit server" in message  # the tail of its own log


@needs_server
def test_restart_keeps_address_and_keys(server: LiveKitServer) -> None:
    import urllib.request

    server.start()
    url, key = server.url, server.api_key
    server.restart()
    assert (server.url, server.api_key) == (url, key)
    with urllib.request.urlopen(server.http_url + "/", timeout=5) as resp:
        assert resp.read() == b"OK"
