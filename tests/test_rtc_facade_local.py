"""The rest of the rtc facade without a server: facades for livekit objects in room events,
video in-process, the loop → greenlet bridge behind RPC handlers, and input checks."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import gevent
import gevent.event
import gevent.queue
import pytest
from livekit.rtc._proto import participant_pb2, track_pb2

from syncagents import _bridge, rtc
from syncagents.rtc import _registry, rpc
from syncagents.rtc.track import source_rate_of

lk = _bridge.livekit_rtc()


def _frame(width: int = 32, height: int = 24, shade: int = 0) -> rtc.VideoFrame:
    return rtc.VideoFrame(width, height, rtc.VideoBufferType.RGBA,
                          bytes([shade, 10, 20, 255]) * (width * height))


def test_video_source_to_stream_in_process_and_close_from_another_greenlet() -> None:
    source = rtc.VideoSource(32, 24)
    track = rtc.LocalVideoTrack.create_video_track("camera", source)
    assert isinstance(track, rtc.LocalVideoTrack) and track.kind == rtc.TrackKind.KIND_VIDEO
    stream = rtc.VideoStream(track)
    stop = gevent.event.Event()

    def camera() -> None:  # paced like a camera; stops when told
        while not stop.is_set():
            source.capture_frame(_frame())
            stop.wait(1 / 30)

    producer = gevent.spawn(camera)
    try:
        events = [stream.next(timeout=10) for _ in range(3)]
        assert all(isinstance(ev, rtc.VideoFrameEvent) for ev in events)
        assert (events[0].frame.width, events[0].frame.height) == (32, 24)

        ended = gevent.event.Event()

        def reader() -> None:
            for _ in stream:
                pass
            ended.set()

        gevent.spawn(reader)
        stream.close()
        assert ended.wait(10)
    finally:
        stop.set()
        producer.join(timeout=5)
        source.close()


def test_video_input_errors_are_clear() -> None:
    with pytest.raises(ValueError, match="width"):
        rtc.VideoSource(0, 24)
    source = rtc.VideoSource(16, 16)
    with pytest.raises(TypeError, match="VideoFrame"):
        source.capture_frame(b"pixels")
    audio_source = rtc.AudioSource(48000, 1)
    with pytest.raises(TypeError, match="VideoSource"):
        rtc.LocalVideoTrack.create_video_track("v", audio_source)
    with pytest.raises(TypeError, match="AudioSource"):
        rtc.LocalAudioTrack.create_audio_track("a", source)
    audio_track = rtc.LocalAudioTrack.create_audio_track("a", audio_source)
    with pytest.raises(ValueError, match="video track"):
        rtc.VideoStream(audio_track)
    source.close()
    audio_source.close()


def test_local_tracks_keep_one_facade_and_their_source_rate() -> None:
    source = rtc.AudioSource(24000, 1)
    track = rtc.LocalAudioTrack.create_audio_track("voice", source)
    assert isinstance(track, rtc.LocalAudioTrack)
    assert _registry.facade(track._lk) is track  # what publications and events hand back
    assert source_rate_of(track) == 24000
    assert track.name == "voice" and not track.muted
    track.mute()
    assert track.muted
    source.close()


# -- room events ------------------------------------------------------------------------------


def _lk_participant(identity: str) -> Any:
    # a livekit RemoteParticipant as livekit builds it from the server's info (handle 0: no
    # native object behind it, disposing it is a no-op)
    info = participant_pb2.ParticipantInfo(identity=identity, sid=f"PA_{identity}",
                                           name=identity.title(), metadata="m")
    info.attributes["role"] = "caller"
    return lk.RemoteParticipant(participant_pb2.OwnedParticipant(info=info))


def _lk_publication(sid: str) -> Any:
    info = track_pb2.TrackPublicationInfo(sid=sid, name="microphone",
                                          kind=track_pb2.KIND_AUDIO,
                                          source=track_pb2.SOURCE_MICROPHONE)
    return lk.RemoteTrackPublication(track_pb2.OwnedTrackPublication(info=info))


def _no_coroutines(obj: Any) -> None:
    for name in dir(obj):
        if not name.startswith("_"):
            attr = getattr(obj, name)
            assert not inspect.iscoroutinefunction(attr), f"{type(obj).__name__}.{name}"
            assert not inspect.iscoroutine(attr), f"{type(obj).__name__}.{name}"


def test_room_handlers_get_facades_with_stable_identity() -> None:
    room = rtc.Room()
    seen: gevent.queue.Queue[tuple[str, tuple[Any, ...]]] = gevent.queue.Queue()

    def recorder(event: str) -> Callable[..., None]:
        return lambda *args: seen.put((event, args))

    for event in ("participant_connected", "track_published", "data_received",
                  "active_speakers_changed"):
        room.on(event, recorder(event))
    room._ensure()
    alice, publication = _lk_participant("alice"), _lk_publication("TR_mic")
    alice._track_publications[publication.sid] = publication
    packet = rtc.DataPacket(data=b"hi", kind=rtc.DataPacketKind.KIND_RELIABLE,
                            participant=alice, topic="chat")

    def emit_all() -> None:  # on the loop thread, exactly as livekit emits
        room._lk.emit("participant_connected", alice)
        room._lk.emit("track_published", publication, alice)
        room._lk.emit("data_received", packet)
        room._lk.emit("active_speakers_changed", [alice])

    _bridge.call(emit_all)
    got = dict(seen.get(timeout=5) for _ in range(4))

    (participant,) = got["participant_connected"]
    assert isinstance(participant, rtc.RemoteParticipant)
    assert (participant.identity, participant.sid, participant.name, participant.metadata) == (
        "alice", "PA_alice", "Alice", "m")
    assert participant.attributes == {"role": "caller"}
    pub, owner = got["track_published"]
    assert owner is participant  # the same facade in every event
    assert isinstance(pub, rtc.RemoteTrackPublication)
    assert participant.track_publications == {"TR_mic": pub}
    assert participant.track_publications["TR_mic"] is pub
    assert (pub.kind, pub.source, pub.name, pub.subscribed, pub.track) == (
        rtc.TrackKind.KIND_AUDIO, rtc.TrackSource.SOURCE_MICROPHONE, "microphone", False, None)
    (data,) = got["data_received"]
    assert data.participant is participant and (data.data, data.topic) == (b"hi", "chat")
    assert packet.participant is alice  # livekit's own packet is left alone
    ((speaker,),) = got["active_speakers_changed"]
    assert speaker is participant
    _no_coroutines(participant)
    _no_coroutines(pub)
    room.disconnect()


def test_room_before_connecting() -> None:
    room = rtc.Room()
    assert room.remote_participants == {}
    with pytest.raises(RuntimeError, match="before connecting"):
        room.local_participant  # noqa: B018
    with pytest.raises(RuntimeError, match="isn't connected"):
        room.get_stats()
    with pytest.raises(RuntimeError, match="disconnected"):
        room.get_sid(timeout=5)
    with pytest.raises(TypeError, match="callable"):
        room.register_text_stream_handler("t", "not a function")  # type: ignore[arg-type]


def test_nothing_public_is_async() -> None:
    for name in rtc.__all__:
        obj = getattr(rtc, name)
        assert not inspect.iscoroutinefunction(obj), name
        if inspect.isclass(obj) and obj.__module__.startswith("syncagents.rtc"):
            for attr_name, attr in inspect.getmembers(obj):
                if not attr_name.startswith("_"):
                    assert not inspect.iscoroutinefunction(attr), f"{name}.{attr_name}"
                    assert not inspect.isasyncgenfunction(attr), f"{name}.{attr_name}"


# -- RPC plumbing -----------------------------------------------------------------------------


def _spawn_like_a_job(spawned: list[gevent.Greenlet]) -> Callable[..., gevent.Greenlet]:
    # a job's group logs what its greenlets raise instead of letting SystemExit reach the hub
    def guarded(fn: Callable[[], Any]) -> None:
        try:
            fn()
        except BaseException:
            pass

    def spawn(fn: Callable[[], Any]) -> gevent.Greenlet:
        g = gevent.spawn(guarded, fn)
        spawned.append(g)
        return g

    return spawn


def _data(payload: str = "p") -> Any:
    return rtc.RpcInvocationData("req-1", "caller", payload, 5.0, method="m")


def test_in_greenlet_hands_results_errors_and_cancellation_across() -> None:
    spawned: list[gevent.Greenlet] = []
    spawn = _spawn_like_a_job(spawned)

    async def through(fn: Callable[[], Any]) -> Any:
        return await _bridge.in_greenlet(spawn, fn)

    assert _bridge.run(through(lambda: 42), timeout=5) == 42
    with pytest.raises(ZeroDivisionError):
        _bridge.run(through(lambda: 1 / 0), timeout=5)

    def exits() -> None:
        raise SystemExit(3)

    with pytest.raises(_bridge.GreenletEnded) as info:
        _bridge.run(through(exits), timeout=5)
    assert isinstance(info.value.cause, SystemExit)

    stopped = gevent.event.Event()

    def forever() -> None:
        try:
            gevent.sleep(60)
        finally:
            stopped.set()

    with pytest.raises(TimeoutError):
        _bridge.run(through(forever), timeout=0.2)
    assert stopped.wait(5), "cancelling the awaiting task must kill the greenlet"

    def no_spawn(fn: Callable[[], Any]) -> gevent.Greenlet:
        raise RuntimeError("job has ended")

    async def refused() -> Any:
        return await _bridge.in_greenlet(no_spawn, lambda: 1)

    with pytest.raises(RuntimeError, match="job has ended"):
        _bridge.run(refused(), timeout=5)


def test_rpc_handler_outcomes_become_livekit_answers() -> None:
    spawned: list[gevent.Greenlet] = []
    spawn = _spawn_like_a_job(spawned)

    def answer(handler: Callable[[Any], Any]) -> Any:
        return _bridge.run(rpc.invoker("m", handler, spawn)(_data("bob")), timeout=5)

    where: list[bool] = []

    def greet(data: Any) -> str:
        where.append(_bridge.in_loop_thread())
        return f"hi {data.payload}"

    assert answer(greet) == "hi bob" and where == [False]
    with pytest.raises(rtc.RpcError, match="nope"):
        answer(lambda data: (_ for _ in ()).throw(rtc.RpcError(2001, "nope")))
    with pytest.raises(TypeError, match="must return a str"):
        answer(lambda data: 42)

    started = gevent.event.Event()

    def slow(data: Any) -> str:
        started.set()
        gevent.sleep(60)
        return ""

    call = gevent.spawn(answer, slow)
    assert started.wait(5)
    spawned[-1].kill()  # the job ended under the handler: the caller is answered at once
    with pytest.raises(rtc.RpcError) as info:
        call.get(timeout=5)
    assert info.value.code == rtc.RpcError.ErrorCode.RECIPIENT_DISCONNECTED


def test_rpc_registration_rejects_what_cannot_work() -> None:
    local = rtc.LocalParticipant(object())  # never reaches livekit: checks come first

    async def coroutine_handler(data: Any) -> str:
        return ""

    with pytest.raises(TypeError, match="plain functions"):
        local.register_rpc_method("m", coroutine_handler)
    with pytest.raises(TypeError, match="callable"):
        local.register_rpc_method("m", "handler")
    with pytest.raises(ValueError, match="non-empty str"):
        local.register_rpc_method("")
    with pytest.raises(TypeError, match="str"):
        local.perform_rpc(destination_identity="u", method="m", payload=b"x")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="dict of str"):
        local.set_attributes({"n": 1})  # type: ignore[dict-item]
    with pytest.raises(FileNotFoundError):
        local.send_file("/nonexistent/file.txt")


def test_stream_writers_check_chunk_types_before_sending() -> None:
    with pytest.raises(TypeError, match="str"):
        rtc.TextStreamWriter(None).write(b"bytes")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="bytes"):
        rtc.ByteStreamWriter(None).write("text")  # type: ignore[arg-type]
