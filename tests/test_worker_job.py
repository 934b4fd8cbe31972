"""JobContext and run_job on their own (no worker, no server), with a fake room."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import gevent
import gevent.event
import pytest

from syncagents.job import (
    AutoDisconnect,
    JobContext,
    JobRequest,
    describe_error,
    make_job,
    run_job,
)
from syncagents.room_events import RoomEvents
from syncagents.runtime import current_job_id


class FakeRoom(RoomEvents):
    """Just the surface JobContext uses (connect/disconnect/isconnected/participants), on the
    event dispatch every room shares."""

    def __init__(self, participants: list[Any] | None = None) -> None:
        super().__init__()
        self.connected = False
        self.connect_args: tuple[Any, ...] | None = None
        self.remote_participants = {p.identity: p for p in participants or []}
        self.local_participant = SimpleNamespace(identity="agent")

    def emit(self, event: str, *args: Any) -> list[Any]:
        return self._emit(event, *args)

    def connect(self, url: str, token: str, options: Any = None, timeout: float = 10) -> None:
        self.connect_args = (url, token, options)
        self.connected = True

    def disconnect(self, timeout: float | None = None) -> None:
        if self.connected:
            self.connected = False
            self.emit("disconnected", "client initiated")

    def isconnected(self) -> bool:
        return self.connected

    def join(self, identity: str, kind: int = 0) -> Any:
        p = SimpleNamespace(identity=identity, kind=kind, track_publications={})
        self.remote_participants[identity] = p
        self.emit("participant_connected", p)
        return p

    def leave(self, identity: str) -> None:
        """Emit participant_disconnected and wait until its handlers ran."""
        p = self.remote_participants.pop(identity)
        gevent.joinall(self.emit("participant_disconnected", p), timeout=5)


def run_in_greenlet(ctx: JobContext, entry: Callable[[JobContext], Any]) -> gevent.Greenlet:
    return gevent.spawn(run_job, ctx, entry)


def test_entrypoint_return_without_room_ends_job() -> None:
    ctx = JobContext(make_job("r"))
    result = run_job(ctx, lambda c: None)
    assert not result.failed and result.reason == "entrypoint returned"


def test_entrypoint_raising_is_reported_not_raised() -> None:
    def entry(ctx: JobContext) -> None:
        raise KeyError("missing")

    result = run_job(JobContext(make_job("r")), entry)
    assert result.failed and result.error == "KeyError: 'missing'"
    assert describe_error(RuntimeError()) == "RuntimeError"


def test_job_greenlets_carry_the_job_id() -> None:
    ids: list[str | None] = []
    ctx = JobContext(make_job("r", job_id="AJ_fixed"))

    def entry(c: JobContext) -> None:
        ids.append(current_job_id())
        c.spawn(lambda: ids.append(current_job_id())).join()

    run_job(ctx, entry)
    assert ids == ["AJ_fixed", "AJ_fixed"]
    assert current_job_id() is None  # the driver's binding was restored


def test_connect_uses_url_token_and_room_disconnect_ends_job() -> None:
    room = FakeRoom()
    ctx = JobContext(make_job("r"), room=room, url="ws://x", token="tok")

    returned = gevent.event.Event()

    def entry(c: JobContext) -> None:
        c.connect()
        assert c.agent.identity == "agent"
        returned.set()

    g = run_in_greenlet(ctx, entry)
    assert returned.wait(timeout=5)
    gevent.joinall(ctx.greenlets(), timeout=5)  # the entry greenlet has finished
    assert not ctx.is_ended()  # entrypoint returned but the room is connected
    assert room.connect_args == ("ws://x", "tok", None)
    room.disconnect()
    result = g.get(timeout=5)
    assert result.reason == "room disconnected" and not result.failed


def test_room_empty_auto_disconnect() -> None:
    room = FakeRoom()
    ctx = JobContext(make_job("r"), room=room)
    joined = gevent.event.Event()

    def entry(c: JobContext) -> None:
        c.connect(auto_disconnect=AutoDisconnect.ROOM_EMPTY)
        joined.set()

    g = run_in_greenlet(ctx, entry)
    assert joined.wait(5)
    room.join("u1")
    room.join("u2")
    room.leave("u1")
    assert not ctx.is_ended()
    room.leave("u2")
    result = g.get(timeout=5)
    assert result.reason == "room empty" and not room.connected


def test_publisher_left_auto_disconnect() -> None:
    room = FakeRoom()
    ctx = JobContext(make_job("r", participant_identity="pub"), room=room)
    joined = gevent.event.Event()

    def entry(c: JobContext) -> None:
        c.connect(auto_disconnect=AutoDisconnect.PUBLISHER_LEFT)
        joined.set()

    g = run_in_greenlet(ctx, entry)
    assert joined.wait(5)
    room.join("pub")
    room.join("other")
    room.leave("other")
    assert not ctx.is_ended()
    room.leave("pub")
    assert g.get(timeout=5).reason == "publisher left"


def test_wait_for_participant() -> None:
    room = FakeRoom([SimpleNamespace(identity="bot", kind=4, track_publications={})])
    ctx = JobContext(make_job("r"), room=room)
    got: list[Any] = []
    waiting = gevent.event.Event()

    def entry(c: JobContext) -> None:
        c.connect(auto_disconnect=AutoDisconnect.NONE)
        with pytest.raises(TimeoutError):
            c.wait_for_participant(timeout=0.05)  # the agent kind does not count
        assert c.wait_for_participant(identity="bot", timeout=1).identity == "bot"
        waiting.set()  # no switch before the wait below starts
        got.append(c.wait_for_participant(timeout=5))
        c.shutdown("seen")

    g = run_in_greenlet(ctx, entry)
    assert waiting.wait(5)
    room.join("human")
    result = g.get(timeout=5)
    assert [p.identity for p in got] == ["human"] and result.reason == "seen"


def test_handlers_run_in_the_job_group_and_die_with_it() -> None:
    room = FakeRoom()
    ctx = JobContext(make_job("r", job_id="AJ_h"), room=room)
    ids: list[str | None] = []
    ready = gevent.event.Event()

    def slow(*args: Any) -> None:
        ids.append(current_job_id())
        gevent.sleep(60)

    room.on("data_received", slow)

    def entry(c: JobContext) -> None:
        c.connect(auto_disconnect=AutoDisconnect.NONE)
        ready.set()

    g = run_in_greenlet(ctx, entry)
    assert ready.wait(5)
    (handler,) = room.emit("data_received", b"x")
    gevent.sleep(0)
    ctx.shutdown()
    g.get(timeout=5)
    assert ids == ["AJ_h"] and handler.dead


def test_shutdown_callbacks_get_reason_when_they_take_one() -> None:
    got: list[Any] = []
    ctx = JobContext(make_job("r"))

    def entry(c: JobContext) -> None:
        c.add_shutdown_callback(lambda reason: got.append(reason))
        c.add_shutdown_callback(lambda: got.append("no-arg"))
        c.add_shutdown_callback(lambda *a: got.append(a))
        c.add_shutdown_callback(lambda: 1 / 0)  # logged, the others still run
        c.add_shutdown_callback(lambda reason="x": got.append(("default", reason)))
        c.shutdown("bye")

    result = run_job(ctx, entry)
    assert got == ["bye", "no-arg", ("bye",), ("default", "x")]
    assert result.reason == "bye" and not result.failed


def test_spawn_after_end_raises() -> None:
    ctx = JobContext(make_job("r"))
    run_job(ctx, lambda c: None)
    with pytest.raises(RuntimeError):
        ctx.spawn(lambda: None)


def test_job_request_answers_once() -> None:
    answers: list[Any] = []
    req = JobRequest(make_job("r", job_id="AJ_1"), lambda r, a, t: answers.append((a, t)))
    req.accept(name="n")
    with pytest.raises(RuntimeError):
        req.reject()
    ((args, terminate),) = answers
    assert args.identity == "agent-AJ_1" and args.name == "n" and not terminate
    assert req.publisher is None and req.room.name == "r"


def test_no_livekit_rtc_for_jobs_without_a_room() -> None:
    script = (
        "import sys, syncagents\n"
        "from syncagents.job import JobContext, make_job, run_job\n"
        "import syncagents.worker\n"
        "run_job(JobContext(make_job('r')), lambda ctx: None)\n"
        "print('livekit.rtc' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
