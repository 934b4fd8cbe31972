"""Conformance: the official livekit-agents worker against syncagents' DispatchServer.

If the reference implementation of the worker side speaks to our double exactly as it does
to livekit-server, the double (and so every syncagents test built on it) models the real
protocol. Needs an interpreter with ``livekit-agents`` installed: ``$SYNCAGENTS_OFFICIAL_PYTHON``
(e.g. a separate venv), else the current one; skipped when neither has it. The tox env
``conformance`` installs it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from livekit.protocol import agent as proto

from syncagents.testing.dispatch_server import DispatchServer

AGENT = Path(__file__).with_name("official_agent.py")
START_TIMEOUT = 90  # measured 3-10 s on a 2-core machine: it starts a forkserver and idle procs


def _official_python() -> str:
    candidates = [os.environ.get("SYNCAGENTS_OFFICIAL_PYTHON", ""), sys.executable]
    for python in filter(None, candidates):
        probe = subprocess.run(
            [python, "-c", "import livekit.agents"], capture_output=True, timeout=120
        )
        if probe.returncode == 0:
            return python
    if os.environ.get("SYNCAGENTS_REQUIRE_OFFICIAL"):  # the tox env: a skip would prove nothing
        pytest.fail("livekit-agents is not importable in the conformance environment")
    pytest.skip("livekit-agents is not installed (set SYNCAGENTS_OFFICIAL_PYTHON)")


@pytest.fixture(scope="module")
def official_python() -> str:
    return _official_python()


@pytest.fixture
def server() -> Iterator[DispatchServer]:
    with DispatchServer() as srv:
        yield srv


def test_official_worker_speaks_our_dispatch_protocol(
    official_python: str, server: DispatchServer, tmp_path: Path
) -> None:
    marks = tmp_path / "marks.txt"
    log = (tmp_path / "official.log").open("wb")
    env = {
        **os.environ,
        "LIVEKIT_URL": server.url,
        "LIVEKIT_API_KEY": server.api_key,
        "LIVEKIT_API_SECRET": server.api_secret,
        "OFFICIAL_AGENT_NAME": "conformance",
        "OFFICIAL_LOAD": "0.25",
        "OFFICIAL_IDLE_PROCESSES": "1",
        "MARK_FILE": str(marks),
    }
    proc = subprocess.Popen(
        [official_python, str(AGENT), "start"], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        # register: type, agent name, version, permissions with agent=true
        worker = server.wait_for_worker(timeout=START_TIMEOUT)
        (reg,) = server.registrations
        assert reg.agent_name == "conformance" and reg.type == proto.JT_ROOM
        assert reg.version and reg.allowed_permissions.agent
        assert reg.allowed_permissions.can_publish and reg.allowed_permissions.can_subscribe

        # load reports (every 2.5 s): its load_fnc says 0.25
        server.wait_for_worker(
            lambda w: w.id == worker.id and w.status_updates >= 2 and abs(w.load - 0.25) < 1e-6,
            timeout=30,
        )
        assert worker.status == proto.WS_AVAILABLE

        # availability → assignment with our token → its job runs and reports back
        job = server.dispatch(room="conf-room", agent_name="conformance", metadata="0.2")
        job.wait_assigned(timeout=30)
        assert job.identity == f"agent-{job.id}"
        assert job.attributes.get("lk.agent_name") == "conformance"
        job.wait_for_status(proto.JS_RUNNING, timeout=60)
        job.wait_ended(timeout=60)
        assert job.status == proto.JS_SUCCESS
        assert job.id in marks.read_text()

        # a dropped connection: it reconnects and registers again, and keeps serving
        server.drop_connections()
        again = server.wait_for_worker(lambda w: w.id != worker.id, timeout=60)
        assert again.agent_name == "conformance" and len(server.registrations) == 2
        job2 = server.dispatch(room="conf-room-2", agent_name="conformance", metadata="0")
        assert job2.wait_ended(timeout=60).status == proto.JS_SUCCESS

        # SIGTERM: it reports full while it drains, then exits
        running = server.dispatch(room="conf-room-3", agent_name="conformance", metadata="3")
        running.wait_for_status(proto.JS_RUNNING, timeout=60)
        proc.send_signal(signal.SIGTERM)
        server.wait_for_worker(lambda w: w.id == again.id and w.status == proto.WS_FULL, 30)
        assert running.wait_ended(timeout=60).status == proto.JS_SUCCESS
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
        log.close()
