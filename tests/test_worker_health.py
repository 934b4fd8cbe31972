"""The worker's health endpoints: ``GET /`` and ``GET /worker``."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request

import gevent
import gevent.event
import pytest
from livekit.protocol import agent as proto
from ports import free_port

from syncagents.health import HealthServer
from syncagents.job import JobContext
from syncagents.testing.dispatch_server import DispatchServer
from syncagents.worker import Worker, WorkerOptions


def get(url: str) -> tuple[int, bytes, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read(), resp.headers.get("Content-Type", "")
    except urllib.error.HTTPError as err:
        return err.code, err.read(), err.headers.get("Content-Type", "")


def test_health_follows_registration_and_jobs() -> None:
    release = gevent.event.Event()

    def entry(ctx: JobContext) -> None:
        release.wait(30)

    server = DispatchServer().start()
    server.stop()  # not reachable yet: the worker keeps retrying
    port = free_port()
    worker = Worker(
        WorkerOptions(
            entrypoint_fnc=entry,
            agent_name="healthy",
            ws_url=server.url,
            api_key=server.api_key,
            api_secret=server.api_secret,
            port=port,
            load_fnc=lambda: 0.25,
        )
    )
    g = gevent.spawn(worker.run)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = gevent.Timeout(5)
        with deadline:  # the health server comes up before the first connection attempt
            while True:
                try:
                    status, body, _ = get(base + "/")
                    break
                except urllib.error.URLError:
                    gevent.sleep(0.02)
        assert status == 503
        server.start()
        worker.wait_for_registration(timeout=15)
        status, body, _ = get(base + "/")
        assert (status, body) == (200, b"OK")
        h = server.dispatch(room="r", agent_name="healthy").wait_for_status(
            proto.JS_RUNNING, timeout=5
        )
        status, body, ctype = get(base + "/worker")
        doc = json.loads(body)
        assert status == 200 and ctype == "application/json"
        assert doc["id"] == worker.id and doc["agent_name"] == "healthy"
        assert doc["active_jobs"] == 1 and doc["load"] == 0.25
        assert get(base + "/nope")[0] == 404
        release.set()
        h.wait_ended(timeout=5)
    finally:
        worker.close()
        g.join(timeout=10)
        server.close()
    # closed: nobody listens there any more
    with socket.socket() as s, pytest.raises(ConnectionRefusedError):
        s.connect(("127.0.0.1", port))


def test_health_server_standalone() -> None:
    state = {"registered": False, "id": "AW_x", "agent_name": "", "active_jobs": 0, "load": 0.0}
    hs = HealthServer(lambda: state, port=0).start()
    try:
        assert get(hs.url + "/")[0] == 503
        state["registered"] = True
        assert get(hs.url + "/")[:2] == (200, b"OK")
    finally:
        hs.stop()


def test_health_port_zero_disables() -> None:
    opts = WorkerOptions(entrypoint_fnc=lambda ctx: None, port=0, ws_url="ws://x", api_key="k")
    assert Worker(opts)._serve_health is False


def test_an_idle_connection_is_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    import socket as socket_mod

    from syncagents import health

    monkeypatch.setattr(health, "IDLE_TIMEOUT", 0.5)
    server = health.HealthServer(lambda: {"registered": True}, port=0).start()
    try:
        with socket_mod.create_connection(("127.0.0.1", server.port), timeout=30) as conn:
            conn.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")  # keep-alive by default
            reply = conn.recv(4096)
            assert reply.startswith(b"HTTP/1.1 200")
            # then silence: the server hangs up (recv returns b"") instead of waiting forever
            assert conn.recv(4096) == b""
    finally:
        server.stop()
