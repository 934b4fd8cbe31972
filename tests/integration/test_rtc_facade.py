"""The blocking ``syncagents.rtc`` facade against a real livekit-server.

The agent side is a ``syncagents.rtc.Room`` in this process (gevent patched by conftest); the
other side is the independent livekit asyncio user of ``user_client.py``. Every wait has a
timeout and waits on an event set by a handler (or on the user's JSON events), never a sleep.
"""

from __future__ import annotations

import base64
import inspect
import json
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import gevent
import gevent.queue
import pytest
from conftest import EVENT_TIMEOUT, UserClient, room_name
from greenlet import getcurrent
from livekit import api as lkapi

from syncagents import _bridge, rtc
from syncagents.runtime import bind_job_id, current_job_id
from syncagents.testing.livekit_server import LiveKitServer

lk = _bridge.livekit_rtc()
UserFactory = Callable[..., UserClient]


# -- helpers ---------------------------------------------------------------------------------


def agent_token(server: LiveKitServer, room: str, identity: str = "agent") -> str:
    # like conftest.user_token, plus canUpdateOwnMetadata: setting one's own attributes,
    # metadata and name needs it (the server ignores the request otherwise)
    grants = lkapi.VideoGrants(room_join=True, room=room, can_publish=True, can_subscribe=True,
                               can_publish_data=True, can_update_own_metadata=True)
    return (
        lkapi.AccessToken(server.api_key, server.api_secret)
        .with_identity(identity)
        .with_name(identity)
        .with_grants(grants)
        .to_jwt()
    )


def allow_metadata_updates(server: LiveKitServer, room: str, identity: str) -> None:
    """Grant ``identity`` canUpdateMetadata through the server API (RoomService.
    UpdateParticipant over Twirp/JSON): conftest's user tokens do not carry it."""
    token = (
        lkapi.AccessToken(server.api_key, server.api_secret)
        .with_grants(lkapi.VideoGrants(room_admin=True, room=room))
        .to_jwt()
    )
    body = json.dumps({
        "room": room,
        "identity": identity,
        "permission": {"can_subscribe": True, "can_publish": True, "can_publish_data": True,
                       "can_update_metadata": True},
    }).encode()
    request = urllib.request.Request(
        f"{server.http_url}/twirp/livekit.RoomService/UpdateParticipant",
        data=body,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as resp:
        assert resp.status == 200


class Events:
    """Room events seen by handlers, waited on with a timeout."""

    def __init__(self, room: rtc.Room, *names: str) -> None:
        self._queue: gevent.queue.Queue[tuple[str, tuple[Any, ...], bool]] = gevent.queue.Queue()
        self._seen: list[tuple[str, tuple[Any, ...], bool]] = []
        for name in names:
            room.on(name, self._recorder(name))

    def _recorder(self, name: str) -> Callable[..., None]:
        def record(*args: Any) -> None:
            on_greenlet = isinstance(getcurrent(), gevent.Greenlet)
            self._queue.put((name, args, on_greenlet and not _bridge.in_loop_thread()))

        return record

    def wait(self, name: str, where: Callable[..., bool] | None = None,
             timeout: float = EVENT_TIMEOUT) -> tuple[Any, ...]:
        for item in self._seen:
            if item[0] == name and (where is None or where(*item[1])):
                self._seen.remove(item)
                assert item[2], f"{name} handler did not run in a greenlet"
                return item[1]
        with gevent.Timeout(timeout, AssertionError(f"no {name!r} event within {timeout} s")):
            while True:
                item = self._queue.get()
                if item[0] == name and (where is None or where(*item[1])):
                    assert item[2], f"{name} handler did not run in a greenlet"
                    return item[1]
                self._seen.append(item)


def assert_blocking(obj: Any, seen: set[int] | None = None) -> None:
    """Nothing reachable on ``obj`` (recursively through facades, dicts and lists) is a
    coroutine function, a coroutine or one of livekit's own participants/tracks/publications."""
    seen = set() if seen is None else seen
    if id(obj) in seen:
        return
    seen.add(id(obj))
    assert not isinstance(obj, (lk.Participant, lk.Track, lk.TrackPublication, lk.Room)), obj
    if isinstance(obj, dict):
        for value in obj.values():
            assert_blocking(value, seen)
        return
    if isinstance(obj, (list, tuple)):
        for value in obj:
            assert_blocking(value, seen)
        return
    if not type(obj).__module__.startswith("syncagents.rtc"):
        return
    for name in dir(obj):
        if name.startswith("_"):
            continue
        attr = getattr(obj, name)
        where = f"{type(obj).__name__}.{name}"
        assert not inspect.iscoroutinefunction(attr), f"{where} is a coroutine function"
        assert not inspect.iscoroutine(attr), f"{where} is a coroutine"
        assert not inspect.isasyncgenfunction(attr), f"{where} is an async generator"
        assert_blocking(attr, seen)


@pytest.fixture
def rooms() -> Iterator[list[rtc.Room]]:
    made: list[rtc.Room] = []
    yield made
    for room in made:
        room.disconnect(timeout=10)


def connect_agent(server: LiveKitServer, name: str, room: rtc.Room, rooms: list[rtc.Room],
                  options: Any = None) -> rtc.Room:
    rooms.append(room)
    room.connect(server.url, agent_token(server, name), options, timeout=EVENT_TIMEOUT)
    return room


def agent_known_to(user: UserClient, identity: str = "agent") -> None:
    # data sent before the user's SDK knows the sender crashes livekit's Rust SDK (a panic on
    # a stream from an unknown participant): wait until the user saw the agent join
    user.wait_for("participant_connected", lambda e: e["identity"] == identity)


# -- tests -----------------------------------------------------------------------------------


def test_remote_participant_publication_and_track_facades(
    livekit_server: LiveKitServer, user_factory: UserFactory, rooms: list[rtc.Room]
) -> None:
    name = room_name("facades")
    user = user_factory(name, "user", role="caller")
    room = rtc.Room()
    events = Events(room, "track_published", "track_subscribed", "track_unsubscribed")
    connect_agent(livekit_server, name, room, rooms, rtc.RoomOptions(auto_subscribe=False))

    participant = room.remote_participants["user"]
    assert isinstance(participant, rtc.RemoteParticipant)
    assert room.remote_participants["user"] is participant  # one facade per participant
    assert participant.identity == "user" and participant.sid.startswith("PA_")
    assert participant.attributes == {"role": "caller"}
    assert participant.kind == rtc.ParticipantKind.PARTICIPANT_KIND_STANDARD

    user.send("publish_video", width=64, height=48, frames=900)
    pub, who = events.wait("track_published")
    assert who is participant
    assert isinstance(pub, rtc.RemoteTrackPublication)
    assert pub.kind == rtc.TrackKind.KIND_VIDEO and pub.source == rtc.TrackSource.SOURCE_CAMERA
    assert participant.track_publications[pub.sid] is pub
    assert not pub.subscribed and pub.track is None
    with pytest.raises(TypeError, match="bool"):
        pub.set_subscribed("yes")  # type: ignore[arg-type]

    pub.set_subscribed(True)
    track, sub_pub, sub_who = events.wait("track_subscribed")
    assert sub_pub is pub and sub_who is participant
    assert isinstance(track, rtc.RemoteVideoTrack)
    assert pub.track is track and pub.subscribed
    assert_blocking((track, sub_pub, sub_who, room))

    with rtc.VideoStream(track) as stream:
        frames = [stream.next(timeout=EVENT_TIMEOUT) for _ in range(5)]
    assert all(isinstance(ev, rtc.VideoFrameEvent) for ev in frames)
    assert (frames[-1].frame.width, frames[-1].frame.height) == (64, 48)

    track_stats = track.get_stats(timeout=EVENT_TIMEOUT)
    assert any(s.HasField("inbound_rtp") for s in track_stats), track_stats
    room_stats = room.get_stats(timeout=EVENT_TIMEOUT)
    assert isinstance(room_stats, rtc.RtcStats)
    # one peer connection by default (livekit 1.2): everything is under publisher_stats
    all_stats = room_stats.publisher_stats + room_stats.subscriber_stats
    assert any(s.HasField("inbound_rtp") for s in all_stats), room_stats

    pub.set_subscribed(False)
    gone_track, gone_pub, gone_who = events.wait("track_unsubscribed")
    assert (gone_track, gone_pub, gone_who) == (track, pub, participant)
    assert gone_track is track and gone_pub is pub


def test_attributes_metadata_and_name_both_ways(
    livekit_server: LiveKitServer, user_factory: UserFactory, rooms: list[rtc.Room]
) -> None:
    name = room_name("attrs")
    user = user_factory(name, "user")
    room = rtc.Room()
    events = Events(room, "participant_attributes_changed", "participant_metadata_changed",
                    "participant_name_changed")
    connect_agent(livekit_server, name, room, rooms)
    agent_known_to(user)
    allow_metadata_updates(livekit_server, name, "user")
    remote = room.remote_participants["user"]

    # the user sets: handlers get the same facade participant, already updated
    user.send("set_attributes", attributes={"mood": "happy"})
    changed, who = events.wait("participant_attributes_changed",
                               lambda changed, p: p.identity == "user")
    assert changed == {"mood": "happy"}
    assert who is remote and who.attributes == {"mood": "happy"}
    user.send("set_metadata", metadata="user-meta")
    who, old, new = events.wait("participant_metadata_changed",
                                lambda p, old, new: p.identity == "user")
    assert who is remote and (old, new) == ("", "user-meta")
    assert remote.metadata == "user-meta"
    assert_blocking((changed, who))

    # the agent sets: the user sees it; the agent's own events carry its LocalParticipant
    local = room.local_participant
    local.set_attributes({"state": "thinking"})
    seen = user.wait_for("attributes_changed", lambda e: e["identity"] == "agent")
    assert seen["attributes"] == {"state": "thinking"}
    _, me = events.wait("participant_attributes_changed", lambda changed, p: p.identity == "agent")
    assert me is local and local.attributes == {"state": "thinking"}
    local.set_metadata("agent-meta")
    assert user.wait_for("metadata_changed",
                         lambda e: e["identity"] == "agent")["metadata"] == "agent-meta"
    local.set_name("Agent Smith")
    me, old_name, new_name = events.wait("participant_name_changed",
                                         lambda p, old, new: p.identity == "agent")
    assert me is local and (old_name, new_name) == ("agent", "Agent Smith")
    user.send("remote")
    view = user.wait_for("remote")["participants"]["agent"]
    assert view["attributes"] == {"state": "thinking"} and view["metadata"] == "agent-meta"
    assert_blocking(local)

    with pytest.raises(TypeError, match="dict of str"):
        local.set_attributes({"count": 1})  # type: ignore[dict-item]


def test_video_published_by_the_agent_reaches_the_user(
    livekit_server: LiveKitServer, user_factory: UserFactory, rooms: list[rtc.Room]
) -> None:
    name = room_name("video-out")
    user = user_factory(name, "user")
    room = rtc.Room()
    events = Events(room, "local_track_published")
    connect_agent(livekit_server, name, room, rooms)
    agent_known_to(user)

    source = rtc.VideoSource(64, 48)
    track = rtc.LocalVideoTrack.create_video_track("camera", source)
    options = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_CAMERA)
    publication = room.local_participant.publish_track(track, options)
    assert isinstance(publication, rtc.LocalTrackPublication)
    assert publication.track is track and track.sid == publication.sid
    assert room.local_participant.track_publications[publication.sid] is publication
    published, published_track = events.wait("local_track_published")
    assert published is publication and published_track is track

    def capture() -> None:  # 30 fps of a flat colour, paced by the clock like a camera
        frame = rtc.VideoFrame(64, 48, rtc.VideoBufferType.RGBA, bytes([200, 64, 32, 255]) * 3072)
        while True:
            source.capture_frame(frame)
            gevent.sleep(1 / 30)

    capturer = gevent.spawn(capture)
    try:
        user.send("subscribe_video", frames=10)
        publication.wait_for_subscription(timeout=EVENT_TIMEOUT)
        got = user.wait_for("video_frames")
        assert got["count"] == 10 and (got["width"], got["height"]) == (64, 48)
        stats = track.get_stats(timeout=EVENT_TIMEOUT)
        assert any(s.HasField("outbound_rtp") for s in stats), stats
    finally:
        capturer.kill()
    room.local_participant.unpublish_track(publication.sid, timeout=EVENT_TIMEOUT)
    source.close()
    with pytest.raises(RuntimeError, match="closed"):
        source.capture_frame(rtc.VideoFrame(64, 48, rtc.VideoBufferType.RGBA, bytes(12288)))


def _job_room(job_id: str) -> rtc.Room:
    # a Room created inside a job's greenlet: its handler greenlets belong to that job
    g = gevent.Greenlet(rtc.Room)
    bind_job_id(g, job_id)
    g.start()
    return g.get(timeout=5)  # type: ignore[no-any-return]


def test_rpc_both_ways(
    livekit_server: LiveKitServer, user_factory: UserFactory, rooms: list[rtc.Room]
) -> None:
    name = room_name("rpc")
    user = user_factory(name, "user")
    room = _job_room("job-rpc")
    connect_agent(livekit_server, name, room, rooms)
    agent_known_to(user)
    local = room.local_participant
    calls: list[tuple[Any, ...]] = []

    @local.register_rpc_method("greet")
    def greet(data: rtc.RpcInvocationData) -> str:
        calls.append((data.caller_identity, data.payload, current_job_id(),
                      isinstance(getcurrent(), gevent.Greenlet), _bridge.in_loop_thread()))
        assert_blocking(data)
        return f"hello {data.payload}"

    def refuse(data: rtc.RpcInvocationData) -> str:
        raise rtc.RpcError(2001, "not today", data="{}")

    def broken(data: rtc.RpcInvocationData) -> str:
        raise ValueError("a bug in the handler")

    local.register_rpc_method("refuse", refuse)
    local.register_rpc_method("broken", broken)

    def user_calls(method: str, payload: str = "") -> dict[str, Any]:
        user.send("perform_rpc", destination="agent", method=method, payload=payload)
        return user.wait_for("rpc_result")

    assert user_calls("greet", "bob") == {"event": "rpc_result", "payload": "hello bob"}
    assert calls == [("user", "bob", "job-rpc", True, False)]
    refused = user_calls("refuse")
    assert (refused["code"], refused["error"]) == (2001, "not today")
    failed = user_calls("broken")
    assert failed["code"] == rtc.RpcError.ErrorCode.APPLICATION_ERROR
    local.unregister_rpc_method("greet")
    assert user_calls("greet", "again")["code"] == rtc.RpcError.ErrorCode.UNSUPPORTED_METHOD

    # the agent calls the user
    user.send("register_rpc", method="echo", reply="echo:")
    user.wait_for("rpc_registered")
    assert local.perform_rpc(destination_identity="user", method="echo", payload="x",
                             response_timeout=EVENT_TIMEOUT) == "echo:x"
    assert user.wait_for("rpc_request")["caller"] == "agent"
    user.send("register_rpc", method="fail", error="no way")
    user.wait_for("rpc_registered")
    with pytest.raises(rtc.RpcError) as info:
        local.perform_rpc(destination_identity="user", method="fail", payload="",
                          response_timeout=EVENT_TIMEOUT)
    assert info.value.message == "no way" and info.value.code == 1500

    async def not_plain(data: rtc.RpcInvocationData) -> str:
        return ""

    with pytest.raises(TypeError, match="plain functions"):
        local.register_rpc_method("async", not_plain)


def test_text_and_byte_streams_both_ways(
    livekit_server: LiveKitServer, user_factory: UserFactory, rooms: list[rtc.Room],
    tmp_path: Path,
) -> None:
    name = room_name("streams")
    user = user_factory(name, "user")
    room = rtc.Room()
    received: gevent.queue.Queue[tuple[Any, ...]] = gevent.queue.Queue()

    def on_text(reader: rtc.TextStreamReader, identity: str) -> None:
        assert_blocking(reader)
        chunks = list(reader)  # a plain for loop over chunks
        received.put(("text", identity, reader.info.topic, chunks, _bridge.in_loop_thread()))

    def on_bytes(reader: rtc.ByteStreamReader, identity: str) -> None:
        data = reader.read_all(timeout=EVENT_TIMEOUT)
        received.put(("bytes", identity, reader.info.name, data, _bridge.in_loop_thread()))

    room.register_text_stream_handler("to-agent", on_text)  # before connecting, as livekit
    room.register_byte_stream_handler("bytes-to-agent", on_bytes)
    with pytest.raises(ValueError, match="already set"):
        room.register_text_stream_handler("to-agent", on_text)
    connect_agent(livekit_server, name, room, rooms)
    agent_known_to(user)
    local = room.local_participant

    # user -> agent
    user.send("send_text", text="hi agent", topic="to-agent")
    kind, identity, topic, chunks, on_loop = received.get(timeout=EVENT_TIMEOUT)
    assert (kind, identity, topic, "".join(chunks), on_loop) == (
        "text", "user", "to-agent", "hi agent", False)
    user.send("stream_text", chunks=["one ", "two ", "three"], topic="to-agent")
    chunks = received.get(timeout=EVENT_TIMEOUT)[3]
    assert "".join(chunks) == "one two three" and all(isinstance(c, str) for c in chunks)
    # 40 kB: several chunks of livekit's, and a command line the user's stdin reader takes
    # (asyncio's StreamReader stops at 64 KiB per line)
    payload = bytes(range(256)) * 160
    user.send("send_bytes", data_b64=base64.b64encode(payload).decode(), topic="bytes-to-agent",
              name="payload.bin")
    assert received.get(timeout=EVENT_TIMEOUT)[1:4] == ("user", "payload.bin", payload)

    # agent -> user
    user.send("listen_text", topic="to-user")
    user.wait_for("listening")
    user.send("listen_bytes", topic="files")
    user.wait_for("listening")
    info = local.send_text("hello user", topic="to-user", attributes={"k": "v"})
    assert isinstance(info, rtc.TextStreamInfo) and info.topic == "to-user"
    got = user.wait_for("text_stream")
    assert (got["text"], got["identity"], got["attributes"].get("k")) == (
        "hello user", "agent", "v")
    with local.stream_text(topic="to-user") as writer:
        for part in ("streamed ", "in ", "parts"):
            writer.write(part)
    assert writer.closed
    assert user.wait_for("text_stream")["text"] == "streamed in parts"

    path = tmp_path / "notes.txt"
    path.write_bytes(b"line one\nline two\n")
    file_info = local.send_file(path, topic="files")
    assert isinstance(file_info, rtc.ByteStreamInfo) and file_info.name == "notes.txt"
    got = user.wait_for("byte_stream", lambda e: e["name"] == "notes.txt")
    assert base64.b64decode(got["data_b64"]) == path.read_bytes()
    local.send_bytes(b"\x00\x01\x02", topic="files", name="blob.bin")
    got = user.wait_for("byte_stream", lambda e: e["name"] == "blob.bin")
    assert base64.b64decode(got["data_b64"]) == b"\x00\x01\x02"
    with local.stream_bytes("chunks.bin", topic="files") as byte_writer:
        for block in (b"a" * 1000, b"b" * 1000):
            byte_writer.write(block)
    got = user.wait_for("byte_stream", lambda e: e["name"] == "chunks.bin")
    assert base64.b64decode(got["data_b64"]) == b"a" * 1000 + b"b" * 1000

    # a block that fails ends the stream as failed: the reader sees the reason
    with pytest.raises(KeyError), local.stream_text(topic="to-user") as failing:
        failing.write("half a sent")
        raise KeyError("boom")
    assert "boom" in user.wait_for("error")["message"]

    with pytest.raises(FileNotFoundError, match="no such file"):
        local.send_file(tmp_path / "missing.txt")
    with pytest.raises(TypeError, match="send_text"):
        local.send_bytes("not bytes")  # type: ignore[arg-type]
