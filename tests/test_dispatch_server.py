"""DispatchServer, driven by a hand-written protocol client (websocket-client + protobuf), and
a whole agent run against it in a local room (the test is the user)."""

from __future__ import annotations

import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gevent
import numpy as np
import pytest
import websocket
from livekit import api
from livekit.protocol import agent as proto
from livekit.protocol import models

from syncagents import JobContext, VoiceAssistant, Worker, WorkerOptions, rtc
from syncagents._ws import agent_url, mint_worker_token
from syncagents.job import make_job
from syncagents.testing import FakeLLM, FakeSTT, FakeTTS, FakeVAD
from syncagents.testing.dispatch_server import DispatchServer
from syncagents.testing.local_room import open_local_room
from syncagents.utils.audio import sine_frame


@pytest.fixture
def server() -> Iterator[DispatchServer]:
    with DispatchServer() as srv:
        yield srv


class RawWorker:
    def __init__(self, server: DispatchServer, token: str | None = None) -> None:
        token = token or mint_worker_token(server.api_key, server.api_secret)
        self.ws = websocket.create_connection(
            agent_url(server.url), header=[f"Authorization: Bearer {token}"], timeout=5
        )
        self.id = ""

    def send(self, msg: proto.WorkerMessage) -> None:
        self.ws.send(msg.SerializeToString(), websocket.ABNF.OPCODE_BINARY)

    def recv(self) -> proto.ServerMessage:
        msg = proto.ServerMessage()
        msg.ParseFromString(self.ws.recv())
        return msg

    def register(self, agent_name: str = "", **perms: Any) -> RawWorker:
        req = proto.RegisterWorkerRequest(
            type=proto.JT_ROOM, agent_name=agent_name, version="raw-1"
        )
        if perms:
            req.allowed_permissions.CopyFrom(models.ParticipantPermission(agent=True, **perms))
        self.send(proto.WorkerMessage(register=req))
        reply = self.recv()
        assert reply.WhichOneof("message") == "register"
        self.id = reply.register.worker_id
        return self

    def status(self, status: int, load: float = 0.0, jobs: int = 0) -> None:
        self.send(
            proto.WorkerMessage(
                update_worker=proto.UpdateWorkerStatus(status=status, load=load, job_count=jobs)  # type: ignore[arg-type]
            )
        )

    def answer(self, job_id: str, available: bool, **fields: Any) -> None:
        self.send(
            proto.WorkerMessage(
                availability=proto.AvailabilityResponse(
                    job_id=job_id, available=available, **fields
                )
            )
        )

    def job_update(self, job_id: str, status: int, error: str = "") -> None:
        self.send(
            proto.WorkerMessage(
                update_job=proto.UpdateJobStatus(job_id=job_id, status=status, error=error)  # type: ignore[arg-type]
            )
        )

    def close(self) -> None:
        self.ws.close()


def expect_status(
    server: DispatchServer, token: str | None, status: int, path: str = "/agent"
) -> None:
    header = [f"Authorization: Bearer {token}"] if token else []
    with pytest.raises(websocket.WebSocketBadStatusException) as err:
        websocket.create_connection(f"{server.url}{path}", header=header, timeout=5)
    assert err.value.status_code == status


# -- auth and handshake -------------------------------------------------------------------------


def test_auth_rejections(server: DispatchServer) -> None:
    expect_status(server, None, 401)
    no_agent = api.AccessToken(server.api_key, server.api_secret).with_grants(
        api.VideoGrants(room_join=True, room="r")
    )
    expect_status(server, no_agent.with_identity("x").to_jwt(), 401)
    expect_status(
        server, mint_worker_token(server.api_key, "another-secret-of-32-bytes-or-more!"), 401
    )
    expect_status(server, mint_worker_token("other-key", server.api_secret), 401)
    assert server.auth_failures == 4
    server.reject_auth = True
    expect_status(server, mint_worker_token(server.api_key, server.api_secret), 401)
    server.reject_auth = False
    expect_status(server, mint_worker_token(server.api_key, server.api_secret), 404, "/rtc")
    RawWorker(server).register().close()


def test_register_and_pings(server: DispatchServer) -> None:
    w = RawWorker(server).register(agent_name="raw")
    (reg,) = server.workers
    assert reg.id == w.id and reg.agent_name == "raw" and reg.version == "raw-1"
    assert reg.permissions.can_publish  # livekit-server's defaults without allowed_permissions
    w.send(proto.WorkerMessage(ping=proto.WorkerPing(timestamp=1234)))
    pong = w.recv()
    assert pong.WhichOneof("message") == "pong" and pong.pong.last_timestamp == 1234
    w.ws.ping(b"hi")
    opcode, frame = w.ws.recv_data_frame(control_frame=True)
    assert opcode == websocket.ABNF.OPCODE_PONG and frame.data == b"hi"
    server.answer_pings = False
    w.ws.ping(b"again")
    w.ws.settimeout(0.3)
    with pytest.raises(websocket.WebSocketTimeoutException):
        w.ws.recv_data_frame(control_frame=True)
    w.close()
    server.wait_until(lambda: (not reg.connected) or None, 5, "disconnect")


def test_register_timeout_and_order() -> None:
    with DispatchServer(register_timeout=0.3) as server:
        silent = RawWorker(server)
        # closed by the server (a read timeout would raise WebSocketTimeoutException)
        with pytest.raises((websocket.WebSocketConnectionClosedException, ConnectionError)):
            silent.ws.settimeout(5)
            silent.ws.recv()
        early = RawWorker(server)
        early.status(proto.WS_AVAILABLE)  # anything but register/ping first: closed
        with pytest.raises((websocket.WebSocketConnectionClosedException, ConnectionError)):
            early.ws.recv()
        assert server.workers == []


# -- dispatching --------------------------------------------------------------------------------


def test_offer_accept_token_and_updates(server: DispatchServer) -> None:
    w = RawWorker(server).register(agent_name="a", can_publish=False, can_subscribe=True)
    h = server.dispatch(room="lobby", agent_name="a", metadata="m")
    offer = w.recv()
    assert offer.WhichOneof("message") == "availability"
    job = offer.availability.job
    assert job.id == h.id and job.room.name == "lobby" and job.metadata == "m"
    assert job.state.worker_id == w.id
    w.answer(
        job.id,
        True,
        participant_identity="ag",
        participant_name="Agent",
        participant_attributes={"x": "1"},
    )
    assignment = w.recv().assignment
    # the one field livekit-server leaves empty: the job's local room (see the local-room tests)
    assert assignment.job.id == h.id and assignment.url == h.url
    assert h.url.startswith("local://")
    claims = api.TokenVerifier(server.api_key, server.api_secret).verify(assignment.token)
    assert claims.identity == "ag" and claims.name == "Agent" and claims.kind == "agent"
    assert claims.attributes == {"x": "1", "lk.agent_name": "a"}
    assert claims.video.room == "lobby" and claims.video.room_join and claims.video.agent
    assert claims.video.can_publish is False and claims.video.can_subscribe is True
    assert h.wait_assigned(timeout=5).outcome == "assigned"
    w.job_update(h.id, proto.JS_RUNNING)
    h.wait_for_status(proto.JS_RUNNING, timeout=5)
    w.job_update(h.id, proto.JS_FAILED, "ValueError: x")
    h.wait_ended(timeout=5)
    assert h.status == proto.JS_FAILED and h.error == "ValueError: x"
    w.close()


def test_selection_packs_and_skips_full_and_passes_on(server: DispatchServer) -> None:
    a = RawWorker(server).register()
    b = RawWorker(server).register()
    c = RawWorker(server).register()
    c.status(proto.WS_FULL)
    # give `b` a running job and some load: the server packs jobs onto it
    server.wait_until(
        lambda: server.workers[2].status == proto.WS_FULL or None, 5, "c full"
    )
    h1 = server.dispatch(room="r1")
    first = a.recv().availability.job
    a.answer(first.id, False)  # declined: passed on to b
    assert b.recv().availability.job.id == h1.id
    b.answer(h1.id, True, participant_identity="b1")
    b.recv()  # assignment
    h1.wait_assigned(timeout=5)
    assert h1.offered_to == [a.id, b.id]
    b.status(proto.WS_AVAILABLE, load=0.4, jobs=1)
    server.wait_until(lambda: server.workers[1].load > 0 or None, 5, "b load")
    h2 = server.dispatch(room="r2")
    assert b.recv().availability.job.id == h2.id
    b.answer(h2.id, False)
    assert a.recv().availability.job.id == h2.id
    a.answer(h2.id, False)
    assert h2.wait_answered(timeout=5).outcome == "rejected"  # c (full) was never asked
    for w in (a, b, c):
        w.close()


def test_no_worker_and_availability_timeout() -> None:
    with DispatchServer(availability_timeout=0.3) as server:
        h = server.dispatch(room="r", agent_name="nobody", worker_timeout=0.2)
        assert h.wait_answered(timeout=5).outcome == "no_worker"
        w = RawWorker(server).register()
        h2 = server.dispatch(room="r")
        assert w.recv().WhichOneof("message") == "availability"
        assert h2.wait_answered(timeout=5).outcome == "availability_timeout"
        w.close()


def test_dispatch_waits_for_a_worker(server: DispatchServer) -> None:
    h = server.dispatch(room="early")
    w = RawWorker(server).register()
    assert w.recv().availability.job.id == h.id
    w.close()


def test_terminate_and_simulate(server: DispatchServer) -> None:
    w = RawWorker(server).register(agent_name="s")
    w.send(
        proto.WorkerMessage(
            simulate_job=proto.SimulateJobRequest(
                room=models.Room(name="sim"), participant=models.ParticipantInfo(identity="u")
            )
        )
    )
    offer = w.recv().availability.job
    assert offer.room.name == "sim" and offer.participant.identity == "u"
    assert offer.type == proto.JT_PUBLISHER and offer.agent_name == "s"
    w.answer(offer.id, True, participant_identity="agent-x")
    w.recv()
    h = server.jobs[offer.id]
    h.wait_assigned(timeout=5)
    server.terminate(h.id)
    assert w.recv().termination.job_id == h.id
    assert h.terminated
    w.close()


def test_reconnected_worker_keeps_reporting_its_job(server: DispatchServer) -> None:
    w = RawWorker(server).register()
    h = server.dispatch(room="r")
    w.answer(w.recv().availability.job.id, True, participant_identity="p")
    w.recv()
    h.wait_assigned(timeout=5)
    port = server.port
    server.stop()
    with pytest.raises(Exception):  # noqa: B017 - any socket error: the server is gone
        w.ws.settimeout(5)
        w.recv()
    server.start()
    assert server.port == port
    w2 = RawWorker(server).register()
    w2.job_update(h.id, proto.JS_SUCCESS)
    h.wait_ended(timeout=5)
    assert h.worker_id == w2.id
    w2.close()


def test_fault_injection_frames_and_drop(server: DispatchServer) -> None:
    w = RawWorker(server).register()
    server.send_raw(b"\x00\x01garbage")
    assert w.ws.recv() == b"\x00\x01garbage"
    server.send_raw(b"text!", text=True)
    assert w.ws.recv() == "text!"
    server.drop_connections()
    with pytest.raises(Exception):  # noqa: B017 - any socket error
        w.ws.settimeout(5)
        w.ws.recv()
    server.wait_until(lambda: True if not server.connected_workers else None, 5, "drop")


# -- local rooms: a whole agent against the double ----------------------------------------------


def _agent(ctx: JobContext) -> None:
    ctx.connect()
    participant = ctx.wait_for_participant(timeout=10)
    assistant = VoiceAssistant(
        vad=FakeVAD(),
        stt=FakeSTT(["turn on the lights"]),
        llm=FakeLLM(responder=lambda chat_ctx: f"ok: {chat_ctx.messages[-1].content}"),
        tts=FakeTTS(seconds_per_char=0.02),
        min_endpointing_delay=0.2,
    )
    assistant.start(ctx.room, participant)
    assistant.say("Hello.")


def _burst_wav(path: Path) -> Path:
    tone = np.frombuffer(sine_frame(440, 0.6, 16000, amplitude=0.3).data, dtype=np.int16)
    pad = np.zeros(4800, dtype=np.int16)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(np.concatenate([pad, tone, pad]).astype("<i2").tobytes())
    return path


def test_a_dispatched_job_joins_a_local_room_and_talks(tmp_path: Path) -> None:
    wav = _burst_wav(tmp_path / "lights.wav")
    with DispatchServer() as server:
        worker = Worker(WorkerOptions(
            entrypoint_fnc=_agent, ws_url=server.url, api_key=server.api_key,
            api_secret=server.api_secret, port=0,
        ))
        runner = gevent.spawn(worker.run)
        try:
            job = server.dispatch(room="kitchen")
            job.wait_connected(timeout=10)
            assert job.url.startswith("local://")
            room = job.local_room
            assert room.name == "kitchen"
            assert room.local_participant.identity == f"agent-{job.id}"
            assert room.local_participant.attributes == {"lk.agent_name": ""}

            turn = job.user_says(str(wav), timeout=60, idle_timeout=0.5)
            assert (turn.user_text, turn.agent_text) == (
                "turn on the lights", "ok: turn on the lights",
            )
            assert turn.latency is not None
            turn = job.user_sends("and the heating", timeout=60, idle_timeout=0.5)
            assert turn.agent_text == "ok: and the heating"
            assert job.transcript == [
                ("agent", "Hello."),
                ("user", "turn on the lights"),
                ("agent", "ok: turn on the lights"),
                ("user", "and the heating"),
                ("agent", "ok: and the heating"),
            ]
            assert job.session.recorder.voiced_s > 0.5

            job.user_leaves()  # ROOM_EMPTY: the agent leaves, the job ends
            job.wait_ended(timeout=10)
            assert job.status == proto.JS_SUCCESS
        finally:
            worker.close()
            runner.join(timeout=10)


def test_the_local_room_checks_the_job_token(server: DispatchServer) -> None:
    w = RawWorker(server).register()
    h = server.dispatch(room="lobby")
    w.answer(w.recv().availability.job.id, True, participant_identity="ag")
    assignment = w.recv().assignment
    h.wait_assigned(timeout=5)

    other = api.AccessToken(server.api_key, server.api_secret).with_identity("ag")
    wrong_room = other.with_grants(api.VideoGrants(room_join=True, room="elsewhere")).to_jwt()
    for token in (wrong_room, "not-a-token"):
        ctx = JobContext(make_job("lobby"), url=assignment.url, token=token)
        with pytest.raises(rtc.ConnectError):
            ctx.connect()
        assert ctx.room is h.local_room and not ctx.room.isconnected()

    ctx = JobContext(make_job("lobby"), url=assignment.url, token=assignment.token)
    ctx.connect()
    assert h.local_room.joined.is_set()
    assert list(ctx.room.remote_participants) == ["user"]
    w.close()


def test_local_room_urls_outside_the_double() -> None:
    with DispatchServer(local_rooms=False) as server:
        w = RawWorker(server).register()
        h = server.dispatch(room="r")
        w.answer(w.recv().availability.job.id, True, participant_identity="p")
        assert not w.recv().assignment.HasField("url")  # exactly what livekit-server sends
        h.wait_assigned(timeout=5)
        with pytest.raises(RuntimeError, match="local_rooms=True"):
            h.local_room  # noqa: B018
        w.close()
    with pytest.raises(LookupError, match="process of the DispatchServer"):
        open_local_room("local://nobody-here")
    ctx = JobContext(make_job("r"), url="local://nobody-here")
    with pytest.raises(LookupError):
        ctx.connect()
