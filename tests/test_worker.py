"""Worker ↔ DispatchServer: registration, offers, jobs, failures, reconnects, drain."""

from __future__ import annotations

import gc
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import gevent
import gevent.event
import psutil
import pytest
from greenlet import greenlet as raw_greenlet
from livekit.protocol import agent as proto
from loguru import logger

from syncagents import job as job_module
from syncagents import worker as worker_module
from syncagents._ws import AgentConnection, agent_url, mint_worker_token
from syncagents.job import JobContext, JobRequest
from syncagents.testing._ws_server import ServerWebSocket, read_http_request, upgrade_response
from syncagents.testing.dispatch_server import DispatchServer
from syncagents.version import __version__
from syncagents.worker import (
    ConnectionFailedError,
    CpuLoad,
    CredentialsRejectedError,
    JobType,
    Worker,
    WorkerOptions,
    WorkerPermissions,
)


@pytest.fixture
def server() -> Iterator[DispatchServer]:
    with DispatchServer() as srv:
        yield srv


@pytest.fixture
def logs() -> Iterator[list[dict[str, Any]]]:
    records: list[dict[str, Any]] = []
    sink = logger.add(lambda m: records.append(m.record), level="DEBUG", format="{message}")
    yield records
    logger.remove(sink)


class Running:
    """A worker running in a greenlet for one test."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.greenlet = gevent.spawn(worker.run)

    def stop(self) -> None:
        self.worker.close()
        self.greenlet.join(timeout=15)
        assert self.greenlet.dead


@pytest.fixture
def start(server: DispatchServer) -> Iterator[Callable[..., Running]]:
    running: list[Running] = []

    def start_worker(**kwargs: Any) -> Running:
        kwargs.setdefault("ws_url", server.url)
        kwargs.setdefault("api_key", server.api_key)
        kwargs.setdefault("api_secret", server.api_secret)
        kwargs.setdefault("port", 0)
        kwargs.setdefault("load_fnc", lambda: 0.0)
        tweaks = kwargs.pop("tweaks", {})
        worker = Worker(WorkerOptions(**kwargs))
        for name, value in tweaks.items():
            setattr(worker, name, value)
        r = Running(worker)
        running.append(r)
        worker.wait_for_registration(timeout=10)
        return r

    yield start_worker
    for r in running:
        r.stop()


def noop(ctx: JobContext) -> None:
    pass


def statuses(handle: Any) -> list[str]:
    return [proto.JobStatus.Name(u.status) for u in handle.updates]


# -- registration ------------------------------------------------------------------------------


def test_registration_fields(server: DispatchServer, start: Callable[..., Running]) -> None:
    perms = WorkerPermissions(can_publish_data=False, hidden=True)
    r = start(
        entrypoint_fnc=noop, agent_name="alice", worker_type=JobType.PUBLISHER, permissions=perms
    )
    (reg,) = server.registrations
    assert reg.agent_name == "alice"
    assert reg.version == __version__
    assert reg.type == proto.JT_PUBLISHER
    p = reg.allowed_permissions
    assert p.agent and p.can_publish and p.can_subscribe and p.hidden
    assert not p.can_publish_data
    w = server.wait_for_worker(lambda w: w.status_updates >= 1, timeout=5)
    assert w.id == r.worker.id and r.worker.registered
    assert w.status == proto.WS_AVAILABLE and w.job_count == 0


def test_update_worker_repeats_with_load(
    server: DispatchServer, start: Callable[..., Running]
) -> None:
    loads = iter([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.75, 0.78])
    start(entrypoint_fnc=noop, load_fnc=lambda: next(loads, 0.79), tweaks={"status_interval": 0.05})
    w = server.wait_for_worker(lambda w: w.status_updates >= 4, timeout=5)
    assert 0.0 < w.load < 0.8
    assert w.status == proto.WS_AVAILABLE


# -- offers --------------------------------------------------------------------------------------


def test_accept_with_identity_name_metadata(
    server: DispatchServer, start: Callable[..., Running]
) -> None:
    seen: list[JobContext] = []
    done = gevent.event.Event()

    def entry(ctx: JobContext) -> None:
        seen.append(ctx)
        done.set()

    def request(req: JobRequest) -> None:
        assert req.room.name == "lobby" and req.agent_name == "bob"
        assert req.publisher is None
        req.accept(
            entry, name="Bob", identity="bob-1", metadata='{"k": 1}', attributes={"role": "host"}
        )

    start(request_fnc=request, agent_name="bob")
    h = server.dispatch(room="lobby", agent_name="bob", metadata="job-meta")
    h.wait_ended(timeout=5)
    assert h.outcome == "assigned" and statuses(h) == ["JS_RUNNING", "JS_SUCCESS"]
    assert (h.identity, h.name, h.metadata) == ("bob-1", "Bob", '{"k": 1}')
    assert h.attributes == {"role": "host", "lk.agent_name": "bob"}
    claims = h.claims
    assert claims.identity == "bob-1" and claims.kind == "agent"
    assert claims.video.room == "lobby" and claims.video.room_join and claims.video.agent
    assert done.wait(1)
    (ctx,) = seen
    # the assignment's room URL when it carries one (the double's local rooms), else ours
    assert ctx.token == h.token and ctx.url == (getattr(h, "url", "") or server.url)
    assert ctx.job.id == h.id and ctx.job.metadata == "job-meta"


def test_default_accept_identity(server: DispatchServer, start: Callable[..., Running]) -> None:
    start(entrypoint_fnc=noop)
    h = server.dispatch(room="r").wait_ended(timeout=5)
    assert h.identity == f"agent-{h.id}" and h.status == proto.JS_SUCCESS


def test_reject(server: DispatchServer, start: Callable[..., Running]) -> None:
    start(request_fnc=lambda req: req.reject(), entrypoint_fnc=noop)
    h = server.dispatch(room="r").wait_answered(timeout=5)
    assert h.outcome == "rejected" and not h.availability.available


def test_reject_terminate(server: DispatchServer, start: Callable[..., Running]) -> None:
    start(request_fnc=lambda req: req.reject(terminate=True), entrypoint_fnc=noop)
    h = server.dispatch(room="r").wait_answered(timeout=5)
    assert h.outcome == "terminated" and h.availability.terminate


def test_unanswered_request_is_rejected(
    server: DispatchServer, start: Callable[..., Running], logs: list[dict[str, Any]]
) -> None:
    start(request_fnc=lambda req: None, entrypoint_fnc=noop)
    h = server.dispatch(room="r").wait_answered(timeout=5)
    assert h.outcome == "rejected"
    assert any("without answering" in r["message"] and h.id in r["message"] for r in logs)


def test_request_fnc_raising_is_rejected(
    server: DispatchServer, start: Callable[..., Running], logs: list[dict[str, Any]]
) -> None:
    def request(req: JobRequest) -> None:
        raise RuntimeError("nope")

    start(request_fnc=request, entrypoint_fnc=noop)
    h = server.dispatch(room="r").wait_answered(timeout=5)
    assert h.outcome == "rejected"
    assert any(r["level"].name == "ERROR" and h.id in r["message"] for r in logs)


def test_accept_without_entrypoint_is_rejected(
    server: DispatchServer, start: Callable[..., Running]
) -> None:
    start(request_fnc=lambda req: req.accept())
    h = server.dispatch(room="r").wait_answered(timeout=5)
    assert h.outcome == "rejected"


def test_load_at_threshold_rejects_at_once(
    server: DispatchServer, start: Callable[..., Running]
) -> None:
    load = [0.0]
    start(entrypoint_fnc=noop, load_fnc=lambda: load[0], load_threshold=0.5)
    server.wait_for_worker(lambda w: w.status_updates >= 1, timeout=5)
    load[0] = 0.5  # the server still thinks the worker is available
    h = server.dispatch(room="r").wait_answered(timeout=5)
    assert h.outcome == "rejected"


# -- jobs ----------------------------------------------------------------------------------------


def test_entrypoint_raising_fails_job_and_worker_goes_on(
    server: DispatchServer, start: Callable[..., Running]
) -> None:
    def entry(ctx: JobContext) -> None:
        if ctx.job.room.name == "bad":
            raise ValueError("boom here")

    r = start(entrypoint_fnc=entry)
    bad = server.dispatch(room="bad").wait_ended(timeout=5)
    assert bad.status == proto.JS_FAILED and bad.error == "ValueError: boom here"
    good = server.dispatch(room="good").wait_ended(timeout=5)
    assert good.status == proto.JS_SUCCESS and good.error == ""
    assert r.greenlet and not r.greenlet.dead


def test_termination_ends_job_fast_and_runs_callbacks(
    server: DispatchServer, start: Callable[..., Running]
) -> None:
    reasons: list[str] = []
    plain: list[bool] = []
    helpers: list[gevent.Greenlet] = []

    def entry(ctx: JobContext) -> None:
        ctx.add_shutdown_callback(lambda reason: reasons.append(reason))
        ctx.add_shutdown_callback(lambda: plain.append(True))
        helpers.append(ctx.spawn(gevent.sleep, 60))
        gevent.sleep(60)

    start(entrypoint_fnc=entry)
    h = server.dispatch(room="r").wait_for_status(proto.JS_RUNNING, timeout=5)
    server.terminate(h.id)
    h.wait_ended(timeout=5)  # not the 60 s the job sleeps (how fast: bench/runtime.py)
    assert h.status == proto.JS_SUCCESS
    assert reasons == ["terminated by the server"] and plain == [True]
    assert helpers[0].dead


def test_shutdown_callback_is_bounded(
    server: DispatchServer, start: Callable[..., Running], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(job_module, "SHUTDOWN_CALLBACK_TIMEOUT", 0.3)
    after: list[bool] = []

    def entry(ctx: JobContext) -> None:
        ctx.add_shutdown_callback(lambda: gevent.sleep(30))
        ctx.add_shutdown_callback(lambda: after.append(True))
        ctx.shutdown("done")

    start(entrypoint_fnc=entry)
    h = server.dispatch(room="r").wait_ended(timeout=5)
    assert h.status == proto.JS_SUCCESS and after == [True]


def test_ctx_shutdown_kills_spawned_and_ends(
    server: DispatchServer, start: Callable[..., Running]
) -> None:
    spawned: list[gevent.Greenlet] = []

    def entry(ctx: JobContext) -> None:
        spawned.append(ctx.spawn(gevent.sleep, 60))
        ctx.spawn(ctx.shutdown, "helper said so")
        gevent.sleep(60)

    start(entrypoint_fnc=entry)
    h = server.dispatch(room="r").wait_ended(timeout=5)
    assert h.status == proto.JS_SUCCESS
    assert spawned[0].dead


HUB_BLOCK_SCRIPT = """
import sys, time
import syncagents
from syncagents.runtime import enable_hub_block_detection
from syncagents.testing.dispatch_server import DispatchServer
from syncagents.worker import Worker, WorkerOptions
import gevent

from syncagents import _bridge
import gevent.event

hits = []
reported = gevent.event.Event()

def listener(job_id, ms, stack):  # called on the monitor's thread
    hits.append(job_id)
    _bridge.post_to_hub(reported.set)

enable_hub_block_detection(100).listeners.append(listener)

def entry(ctx):
    end = time.monotonic() + 0.6
    while time.monotonic() < end:  # holds the hub: no cooperative call
        pass

with DispatchServer() as srv:
    w = Worker(WorkerOptions(entrypoint_fnc=entry, ws_url=srv.url, api_key=srv.api_key,
                             api_secret=srv.api_secret, port=0, load_fnc=lambda: 0.0))
    g = gevent.spawn(w.run)
    w.wait_for_registration(10)
    h = srv.dispatch(room="busy").wait_ended(timeout=60)
    deadline = time.monotonic() + 60
    while h.id not in hits and reported.wait(max(0.0, deadline - time.monotonic())):
        reported.clear()  # another block was reported first: wait for the next report
    w.close()
print("JOB", h.id)
print("HITS", " ".join(str(x) for x in hits))
"""


def test_busy_job_gets_hub_block_warning_with_its_id() -> None:
    # in a subprocess: the hub monitor is process-wide and would stay on for other tests
    out = subprocess.run(
        [sys.executable, "-c", HUB_BLOCK_SCRIPT],
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "SYNCAGENTS_LOG_LEVEL": "WARNING"},
    )
    assert out.returncode == 0, out.stderr[-3000:]
    lines = dict(line.split(" ", 1) for line in out.stdout.splitlines() if " " in line)
    job_id = lines["JOB"].strip()
    assert job_id in lines.get("HITS", "").split()
    assert f"(job {job_id})" in out.stderr and "hub blocked" in out.stderr


# -- connection faults -----------------------------------------------------------------------------


def _long_job(release: gevent.event.Event) -> Callable[[JobContext], None]:
    def entry(ctx: JobContext) -> None:
        release.wait(30)

    return entry


def _wait_unregistered(worker: Worker, timeout: float = 10) -> None:
    """Until ``worker`` noticed it lost its connection (it tells its status listeners)."""
    lost = gevent.event.Event()
    worker.add_status_listener(lambda info: None if worker.registered else lost.set())
    if worker.registered:
        assert lost.wait(timeout), "the worker did not notice the server went away"


def test_restart_reregisters_and_keeps_jobs(
    server: DispatchServer, start: Callable[..., Running]
) -> None:
    release = gevent.event.Event()
    r = start(entrypoint_fnc=_long_job(release))
    first = r.worker.id
    h = server.dispatch(room="r").wait_for_status(proto.JS_RUNNING, timeout=5)
    server.stop()
    _wait_unregistered(r.worker)
    server.start()  # same port
    w = server.wait_for_worker(lambda w: w.id != first, timeout=15)
    assert [c.job_id for c in r.worker.active_jobs] == [h.id]
    gevent.sleep(0)  # the re-sent JS_RUNNING follows the registration on the same socket
    server.wait_until(lambda: h.worker_id == w.id or None, 5, "job re-attached")
    assert h.status == proto.JS_RUNNING
    release.set()
    h.wait_for_status(proto.JS_SUCCESS, timeout=5)


def test_final_update_sent_after_reconnect(
    server: DispatchServer, start: Callable[..., Running]
) -> None:
    release = gevent.event.Event()
    r = start(entrypoint_fnc=_long_job(release))
    first = r.worker.id
    h = server.dispatch(room="r").wait_for_status(proto.JS_RUNNING, timeout=5)
    server.stop()
    _wait_unregistered(r.worker)
    release.set()  # the job ends while the worker is disconnected
    server.wait_until(lambda: not r.worker.active_jobs or None, 5, "job end")
    server.start()
    server.wait_for_worker(lambda w: w.id != first, timeout=15)
    h.wait_for_status(proto.JS_SUCCESS, timeout=5)


def test_dropped_connection_reconnects(
    server: DispatchServer, start: Callable[..., Running]
) -> None:
    r = start(entrypoint_fnc=noop)
    first = r.worker.id
    server.drop_connections()
    w = server.wait_for_worker(lambda w: w.id != first, timeout=15)
    assert r.worker.wait_for_registration(timeout=5) == w.id
    assert server.dispatch(room="r").wait_ended(timeout=5).status == proto.JS_SUCCESS


def test_garbage_frame_is_dropped_and_worker_keeps_serving(
    server: DispatchServer, start: Callable[..., Running], logs: list[dict[str, Any]]
) -> None:
    r = start(entrypoint_fnc=noop)
    first = r.worker.id
    server.send_raw(b"\xff\xfe\xfd not protobuf")
    server.send_raw(b"hello", text=True)
    h = server.dispatch(room="r").wait_ended(timeout=5)
    assert h.status == proto.JS_SUCCESS
    assert r.worker.id == first and len(server.workers) == 1
    warnings = [r["message"] for r in logs if r["level"].name == "WARNING"]
    assert any("undecodable" in m for m in warnings)
    assert any("non-binary" in m for m in warnings)


def test_missing_pong_reconnects(server: DispatchServer, start: Callable[..., Running]) -> None:
    r = start(entrypoint_fnc=noop, tweaks={"ping_interval": 0.1, "pong_timeout": 0.3})
    first = r.worker.id
    server.answer_pings = False
    server.wait_for_worker(lambda w: w.id != first, timeout=10)


def test_wrong_secret_fails_without_retry(server: DispatchServer) -> None:
    secret = "definitely-the-wrong-secret-for-this-server"
    worker = Worker(
        WorkerOptions(
            entrypoint_fnc=noop,
            ws_url=server.url,
            api_key=server.api_key,
            api_secret=secret,
            port=0,
            load_fnc=lambda: 0.0,
        )
    )
    with pytest.raises(CredentialsRejectedError) as err, gevent.Timeout(10):
        worker.run()
    message = str(err.value)
    assert "key/secret were rejected by" in message and server.url in message
    assert secret not in message
    assert server.auth_failures == 1


def test_unreachable_gives_up_after_max_retry(
    monkeypatch: pytest.MonkeyPatch, logs: list[dict[str, Any]]
) -> None:
    # max_retry counts retries after the first attempt; each retry is one WARNING line with
    # its number and delay (the delays themselves: test_retry_delays_follow_the_contract)
    waits: list[int] = []
    monkeypatch.setattr(worker_module, "retry_delay", lambda n: waits.append(n) or 0)
    with DispatchServer() as srv:
        url = srv.url
    secret = "s3cr3t-value-that-is-long-enough-for-hs256"
    worker = Worker(
        WorkerOptions(
            entrypoint_fnc=noop,
            ws_url=url,
            api_key="k",
            api_secret=secret,
            port=0,
            max_retry=2,
            load_fnc=lambda: 0.0,
        )
    )
    with pytest.raises(ConnectionFailedError) as err, gevent.Timeout(15):
        worker.run()
    assert waits == [1, 2]
    retries = [r["message"] for r in logs if r["message"].startswith("could not connect")]
    assert len(retries) == 2
    assert retries[0].startswith(f"could not connect to {url}: ")
    assert retries[0].endswith("; retry 1/2 in 0 s") and retries[1].endswith("; retry 2/2 in 0 s")
    message = str(err.value)
    assert message.startswith(f"could not connect to LiveKit at {url}: ")
    assert message.endswith("(gave up after 3 attempts)") and secret not in message
    assert secret not in " ".join(retries)


def test_retry_delays_follow_the_contract() -> None:
    # API.md: retry n waits min(2·n, 10) s
    assert [worker_module.retry_delay(n) for n in range(1, 8)] == [2, 4, 6, 8, 10, 10, 10]


def test_max_retry_0_fails_after_one_attempt(logs: list[dict[str, Any]]) -> None:
    with DispatchServer() as srv:
        url = srv.url
    worker = Worker(
        WorkerOptions(entrypoint_fnc=noop, ws_url=url, api_key="k", port=0, max_retry=0,
                      api_secret="another-secret-long-enough-for-hs256-signing",
                      load_fnc=lambda: 0.0)
    )
    with pytest.raises(ConnectionFailedError) as err, gevent.Timeout(15):
        worker.run()
    assert str(err.value).endswith("(gave up after 1 attempt)")
    assert not [r for r in logs if r["message"].startswith("could not connect")]


# -- drain ---------------------------------------------------------------------------------------


def test_drain_waits_for_jobs_then_stops(
    server: DispatchServer, start: Callable[..., Running]
) -> None:
    release = gevent.event.Event()
    r = start(entrypoint_fnc=_long_job(release))
    h = server.dispatch(room="r").wait_for_status(proto.JS_RUNNING, timeout=5)
    drainer = gevent.spawn(r.worker.drain)
    w = server.wait_for_worker(lambda w: w.draining and w.status == proto.WS_FULL, timeout=5)
    assert w.job_count == 1
    # an offer that reaches the draining worker is declined
    w.status = proto.WS_AVAILABLE
    refused = server.dispatch(room="other").wait_answered(timeout=5)
    assert refused.outcome == "rejected"
    assert not drainer.dead
    release.set()
    drainer.join(timeout=5)
    assert drainer.dead and r.greenlet.join(timeout=5) is None and r.greenlet.dead
    assert h.status == proto.JS_SUCCESS


def test_drain_timeout_fails_the_rest(
    server: DispatchServer, start: Callable[..., Running]
) -> None:
    r = start(entrypoint_fnc=_long_job(gevent.event.Event()))
    h = server.dispatch(room="r").wait_for_status(proto.JS_RUNNING, timeout=5)
    r.worker.drain(timeout=0.2)
    assert h.status == proto.JS_FAILED and h.error == "drain timeout"


def test_a_drain_timeout_does_not_wait_for_a_hanging_shutdown_callback(
    server: DispatchServer, start: Callable[..., Running]
) -> None:
    callback_started = gevent.event.Event()
    forever = gevent.event.Event()

    def hang() -> None:
        callback_started.set()
        forever.wait()  # never set: only the drain's budget ends it

    def entry(ctx: JobContext) -> None:
        ctx.add_shutdown_callback(hang)
        forever.wait()

    r = start(entrypoint_fnc=entry)
    h = server.dispatch(room="r").wait_for_status(proto.JS_RUNNING, timeout=5)
    cut = _log_event("when the job's time to end ran out")
    try:
        drainer = gevent.spawn(r.worker.drain, 0.2)
        assert callback_started.wait(10)
        # the callback would get 5 s on its own; a drain cut-off gives the whole end 1 s
        assert cut.wait(10)
    finally:
        cut.remove()
    drainer.join(timeout=10)
    assert drainer.dead
    assert h.wait_ended(timeout=5).error == "drain timeout"


def test_simulate_job(server: DispatchServer, start: Callable[..., Running]) -> None:
    rooms: list[tuple[str, str]] = []

    def entry(ctx: JobContext) -> None:
        rooms.append((ctx.job.room.name, ctx.job.participant.identity))

    r = start(entrypoint_fnc=entry, agent_name="sim")
    r.worker.simulate_job("sim-room", participant_identity="user-7")
    h = server.wait_for_job(lambda j: j.room == "sim-room", timeout=5).wait_ended(timeout=5)
    assert h.status == proto.JS_SUCCESS and h.job.type == proto.JT_PUBLISHER
    assert rooms == [("sim-room", "user-7")]


# -- leaks ---------------------------------------------------------------------------------------


def _live_greenlets() -> int:
    return sum(1 for o in gc.get_objects() if isinstance(o, raw_greenlet) and not o.dead)


def test_1000_sequential_jobs_do_not_leak(
    server: DispatchServer, start: Callable[..., Running]
) -> None:
    def entry(ctx: JobContext) -> None:
        ctx.spawn(gevent.sleep, 0)
        ctx.add_shutdown_callback(lambda: None)

    r = start(entrypoint_fnc=entry)
    proc = psutil.Process()

    def run(n: int) -> None:
        for i in range(n):
            h = server.dispatch(room=f"room-{i}").wait_ended(timeout=5)
            assert h.status == proto.JS_SUCCESS

    run(300)  # warm caches and allocator pools
    gc.collect()
    rss0, greenlets0 = proc.memory_info().rss, _live_greenlets()
    run(1000)
    server.jobs.clear()  # the double's own history is not the worker's memory
    gc.collect()
    rss1, greenlets1 = proc.memory_info().rss, _live_greenlets()
    assert rss1 < rss0 * 1.10, (rss0, rss1)
    assert greenlets1 <= greenlets0 + 2, (greenlets0, greenlets1)
    assert not r.worker.active_jobs


# -- small pieces ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("ws://host:7880", "ws://host:7880/agent"),
        ("http://host:7880/", "ws://host:7880/agent"),
        ("https://example.livekit.cloud", "wss://example.livekit.cloud/agent"),
        ("wss://host/prefix", "wss://host/prefix/agent"),
        ("https://host/prefix/", "wss://host/prefix/agent"),
    ],
)
def test_agent_url(url: str, expected: str) -> None:
    assert agent_url(url) == expected


def test_agent_url_rejects_other_schemes() -> None:
    with pytest.raises(ValueError):
        agent_url("ftp://host")


def test_worker_token_has_livekit_api_claims() -> None:
    from livekit import api

    secret = "a-secret-that-is-long-enough-for-hs256-signing"
    verifier = api.TokenVerifier("key", secret)
    ours = verifier.verify(mint_worker_token("key", secret))
    theirs = verifier.verify(
        api.AccessToken("key", secret).with_grants(api.VideoGrants(agent=True)).to_jwt()
    )
    assert ours == theirs and ours.video.agent


def test_cpu_load_follows_this_process() -> None:
    import psutil

    proc = psutil.Process()
    load = CpuLoad(window=2.0)
    t0, cpu0 = time.monotonic(), sum(proc.cpu_times()[:2])
    assert load() == 0.0  # no history yet: start-up work is not reported
    end = time.monotonic() + 1.3
    while time.monotonic() < end:  # burn CPU on purpose
        pass
    value = load()
    # what this process really got of a core meanwhile (less than 1 on a shared machine)
    used = (sum(proc.cpu_times()[:2]) - cpu0) / (time.monotonic() - t0)
    assert 0.0 < value <= 1.0
    assert abs(value - used) < 0.2, (value, used)


# -- protocol edges (issue 10) ----------------------------------------------------------------


class _log_event(gevent.event.Event):
    """An event set by the first log record containing ``text``."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self._sink = logger.add(
            lambda m: self.set() if text in m.record["message"] else None, format="{message}"
        )

    def remove(self) -> None:
        logger.remove(self._sink)


def _raw_offer(job_id: str, room: str = "dup") -> bytes:
    job = proto.Job(id=job_id, type=proto.JT_ROOM)
    job.room.name = room
    return proto.ServerMessage(availability=proto.AvailabilityRequest(job=job)).SerializeToString()


def test_an_offer_for_a_running_job_is_declined(
    server: DispatchServer, start: Callable[..., Running], logs: list[dict[str, Any]]
) -> None:
    release = gevent.event.Event()
    entries: list[str] = []

    def entry(ctx: JobContext) -> None:
        entries.append(ctx.job_id)
        release.wait(30)

    start(entrypoint_fnc=entry)
    job = server.dispatch(room="dup").wait_for_status(proto.JS_RUNNING, timeout=10)
    declined = _log_event("already running")
    try:
        server.send_raw(_raw_offer(job.id))
        assert declined.wait(10)
    finally:
        declined.remove()
    release.set()
    assert job.wait_ended(timeout=10).status == proto.JS_SUCCESS
    assert entries == [job.id]  # started once


def test_an_offer_without_a_job_id_starts_nothing(
    server: DispatchServer, start: Callable[..., Running], logs: list[dict[str, Any]]
) -> None:
    r = start(entrypoint_fnc=noop)
    server.send_raw(_raw_offer(""))
    server.send_raw(proto.ServerMessage(availability=proto.AvailabilityRequest())
                    .SerializeToString())
    h = server.dispatch(room="after").wait_ended(timeout=10)  # messages are handled in order
    assert h.status == proto.JS_SUCCESS
    assert not r.worker.active_jobs
    ignored = [x for x in logs if "without a job id" in x["message"]]
    assert len(ignored) == 2


def test_a_huge_error_text_is_cut_to_64_kib(
    server: DispatchServer, start: Callable[..., Running]
) -> None:
    def entry(ctx: JobContext) -> None:
        raise ValueError("x" * (17 * 1024 * 1024))

    start(entrypoint_fnc=entry)
    h = server.dispatch(room="huge").wait_ended(timeout=30)
    assert h.status == proto.JS_FAILED
    assert h.error.startswith("ValueError: xxx") and len(h.error.encode()) <= 64 * 1024
    # the connection survived: the next job is served on it
    assert server.dispatch(room="next").wait_ended(timeout=10).status == proto.JS_FAILED


def test_a_server_that_drops_every_registration_gets_the_backoff(
    server: DispatchServer, start: Callable[..., Running], logs: list[dict[str, Any]]
) -> None:
    server.drop_after_register = True
    retried = _log_event("dropped at once")
    worker = Worker(WorkerOptions(entrypoint_fnc=noop, ws_url=server.url,
                                  api_key=server.api_key, api_secret=server.api_secret,
                                  port=0, load_fnc=lambda: 0.0))
    g = gevent.spawn(worker.run)
    try:
        assert retried.wait(15)
        message = next(x["message"] for x in logs if "dropped at once" in x["message"])
        assert "retrying in 2 s" in message  # not an immediate reconnection
    finally:
        retried.remove()
        worker.close()
        g.join(timeout=15)


# -- bursts (issue 11): messages handled per socket read ---------------------------------------


@pytest.fixture
def batches(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The size of every batch of server messages the worker reads."""
    sizes: list[int] = []
    recv_batch = AgentConnection.recv_batch

    def recording(conn: AgentConnection) -> list[proto.ServerMessage]:
        batch = recv_batch(conn)
        sizes.append(len(batch))
        return batch

    monkeypatch.setattr(AgentConnection, "recv_batch", recording)
    return sizes


def test_a_burst_of_dispatches_is_answered_in_order_and_every_job_runs(
    server: DispatchServer, start: Callable[..., Running], batches: list[int]
) -> None:
    ran: list[str] = []
    start(entrypoint_fnc=lambda ctx: ran.append(ctx.job_id))
    # dispatched without yielding: the double sends the 300 offers in one go
    handles = [server.dispatch(room=f"burst-{i}") for i in range(300)]
    for h in handles:
        h.wait_ended(timeout=30)
    assert all(h.outcome == "assigned" for h in handles)
    assert all(statuses(h) == ["JS_RUNNING", "JS_SUCCESS"] for h in handles)
    assert sorted(ran) == sorted(h.id for h in handles)  # each job ran once
    # the double stamps each answer as it reads it: in the order the offers went out
    by_offer = sorted(handles, key=lambda h: h.availability_sent_at)
    answered = [h.answered_at for h in by_offer]
    assert answered == sorted(answered)
    assert max(batches) > 1  # the worker did handle several messages per read


class WireServer:
    """A bare agent endpoint for tests that write the server's side of the wire themselves:
    it takes one worker's registration, then :meth:`write` sends several messages in one TCP
    write (one socket read for the worker) and :meth:`recv` reads what the worker sent."""

    def __init__(self) -> None:
        self._listener = socket.socket()  # gevent's: the test process is patched
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(1)
        self.url = f"ws://127.0.0.1:{self._listener.getsockname()[1]}"
        self._sock: socket.socket | None = None
        self._ws: ServerWebSocket | None = None

    def accept(self, timeout: float = 10) -> proto.RegisterWorkerRequest:
        with gevent.Timeout(timeout):
            sock, _ = self._listener.accept()
            rfile = sock.makefile("rb")
            request = read_http_request(rfile)
            assert request is not None and request.is_websocket_upgrade()
            sock.sendall(upgrade_response(request.headers["sec-websocket-key"]))
            self._sock, self._ws = sock, ServerWebSocket(sock, rfile)
            register = self.recv("register").register
        self.write(proto.ServerMessage(register=proto.RegisterWorkerResponse(worker_id="AW_wire")))
        return register

    def connect_worker(self, entrypoint: Callable[[JobContext], None]) -> Running:
        """A worker running ``entrypoint``, connected to this endpoint and registered."""
        worker = Worker(WorkerOptions(entrypoint_fnc=entrypoint, ws_url=self.url, api_key="k",
                                      api_secret="s", port=0, load_fnc=lambda: 0.0))
        running = Running(worker)
        try:
            self.accept()
            worker.wait_for_registration(timeout=10)
        except BaseException:
            self.stop(running)
            raise
        return running

    def write(self, *msgs: proto.ServerMessage | bytes) -> None:
        """``msgs`` as unmasked binary frames (a server's), all in one write; ``bytes`` are
        written as they are (frames made with :func:`server_frame`)."""
        assert self._sock is not None
        frames = [m if isinstance(m, bytes) else server_frame(m.SerializeToString()) for m in msgs]
        self._sock.sendall(b"".join(frames))

    def recv(self, *kinds: str, timeout: float = 10) -> proto.WorkerMessage:
        """The worker's next message of one of ``kinds`` (status updates and the like are
        skipped)."""
        assert self._ws is not None
        with gevent.Timeout(timeout):
            while True:
                _, data = self._ws.recv()
                msg = proto.WorkerMessage.FromString(data)
                if msg.WhichOneof("message") in kinds:
                    return msg

    def stop(self, worker: Running) -> None:
        """Stop the worker (its close handshake answered), then the endpoint."""

        def drain() -> None:
            assert self._ws is not None
            try:
                while True:
                    self._ws.recv()
            except Exception:  # the close frame, answered, ends it
                pass

        reader = gevent.spawn(drain) if self._ws is not None else None
        worker.stop()
        if reader is not None:
            reader.kill()
        if self._ws is not None:
            self._ws.abort()
        self._listener.close()


def server_frame(payload: bytes, opcode: int = 0x2, fin: bool = True) -> bytes:
    """One RFC 6455 frame as a server sends it (unmasked), with the shortest length field."""
    n = len(payload)
    if n < 126:
        length = bytes([n])
    elif n < 1 << 16:
        length = bytes([126]) + n.to_bytes(2, "big")
    else:
        length = bytes([127]) + n.to_bytes(8, "big")
    return bytes([(0x80 if fin else 0) | opcode]) + length + payload


def _offered(job_id: str) -> proto.Job:
    job = proto.Job(id=job_id, type=proto.JT_ROOM)
    job.room.name = "wire"
    return job


def test_offers_in_one_read_are_answered_in_order_and_assignments_in_one_read_all_run(
    batches: list[int],
) -> None:
    count = 200
    jobs = [_offered(f"AJ_wire{i:04d}") for i in range(count)]
    held = jobs[0].id  # runs until the server terminates it
    ran: list[str] = []

    def entry(ctx: JobContext) -> None:
        ran.append(ctx.job_id)
        if ctx.job_id == held:
            gevent.sleep(60)

    wire = WireServer()
    running = wire.connect_worker(entry)
    worker = running.worker
    try:
        wire.write(*[proto.ServerMessage(availability=proto.AvailabilityRequest(job=j))
                     for j in jobs])
        answers = [wire.recv("availability").availability for _ in jobs]
        assert count in batches  # one write, all in by the worker's next read: one batch
        assert [a.job_id for a in answers] == [j.id for j in jobs]  # every one, in order
        assert all(a.available and not a.terminate for a in answers)
        # every assignment in one read, the held job's termination right behind them: it
        # must find the job the same read started
        wire.write(
            *[proto.ServerMessage(assignment=proto.JobAssignment(job=j, token="t")) for j in jobs],
            proto.ServerMessage(termination=proto.JobTermination(job_id=held)),
        )
        final: dict[str, proto.UpdateJobStatus] = {}
        while len(final) < count:
            update = wire.recv("update_job").update_job
            assert update.job_id not in final  # nothing after a job's final status
            if update.status != proto.JS_RUNNING:
                final[update.job_id] = update
        assert count + 1 in batches
        assert set(final) == {j.id for j in jobs}
        assert all(u.status == proto.JS_SUCCESS for u in final.values())
        assert set(ran) >= {j.id for j in jobs[1:]} and len(ran) == len(set(ran))
        assert not worker.active_jobs
    finally:
        wire.stop(running)


def test_frames_of_every_shape_in_one_read_are_read_in_order(
    batches: list[int], logs: list[dict[str, Any]]
) -> None:
    # 7-, 16- and 64-bit lengths, a message in two fragments with a ping between them, and a
    # text frame (dropped): the plain frames are taken from the read buffer directly, the
    # rest by websocket-client's reader, and the two must not get in each other's way
    jobs = [_offered(f"AJ_shape{i}") for i in range(5)]
    jobs[1].metadata = "m" * 300
    jobs[3].metadata = "m" * 70_000
    offers = [
        proto.ServerMessage(availability=proto.AvailabilityRequest(job=j)).SerializeToString()
        for j in jobs
    ]
    half = len(offers[2]) // 2
    wire = WireServer()
    running = wire.connect_worker(noop)
    try:
        wire.write(
            server_frame(offers[0]),
            server_frame(offers[1]),
            server_frame(offers[2][:half], fin=False),
            server_frame(b"are you there", opcode=0x9),  # a ping between the fragments
            server_frame(offers[2][half:], opcode=0x0),
            server_frame(b"not protobuf", opcode=0x1),
            server_frame(offers[3]),
            server_frame(offers[4]),
        )
        answers = [wire.recv("availability").availability for _ in jobs]
        assert [a.job_id for a in answers] == [j.id for j in jobs]
        assert all(a.available for a in answers)
        assert any("non-binary" in r["message"] for r in logs)
        assert sum(batches) == len(jobs)  # each read once (the text frame was dropped)
    finally:
        wire.stop(running)
