"""An independent LiveKit user for integration tests: livekit's own asyncio SDK, in its own
process, remote-controlled by JSON lines.

This file never imports syncagents: it is the other side of the call, written the way a
LiveKit user's app is written (``livekit.rtc`` on asyncio). The test writes one JSON command per
line on stdin and reads one JSON event per line on stdout.

    python user_client.py --url ws://... --token ...

Commands (``{"cmd": ...}``): ``publish_wav`` {path} (publish a mono 16-bit WAV at real-time pace;
``pad_s`` of silence after it), ``record`` {path} (write every frame of the first remote audio
track to a 48 kHz mono WAV until ``stop_record``), ``stop_record``, ``chat`` {text} (a chat message
on ``lk-chat-topic``, as livekit's chat components send it), ``send_text`` {text, topic},
``stream_text`` {chunks, topic}, ``send_bytes`` {data_b64, topic, name}, ``register_rpc``
{method, reply | error}, ``perform_rpc`` {destination, method, payload}, ``set_attributes``
{attributes}, ``set_metadata`` {metadata}, ``publish_video`` {width, height, frames, color},
``subscribe_video`` (count frames of the first remote video track), ``stats``, ``leave``.

Events (``{"event": ...}``): ``connected``, ``participant_connected``,
``participant_disconnected``, ``track_subscribed`` {kind, identity, sid},
``transcription`` {via: "text_stream" | "legacy", text, final, identity}, ``text_stream``
{topic, text, identity, attributes}, ``byte_stream`` {topic, name, size, data_b64},
``data`` {topic, text}, ``rpc_request`` {method, payload, caller}, ``rpc_result`` {payload |
error}, ``attributes_changed`` {identity, attributes}, ``metadata_changed`` {identity, metadata},
``published`` {what}, ``recorded`` {path, seconds}, ``video_frames`` {count, width, height},
``stats`` {publisher, subscriber}, ``error`` {message}, ``disconnected`` {reason}.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import sys
import wave
from typing import Any

from livekit import rtc

SAMPLE_RATE = 48000
FRAME_MS = 10
TRANSCRIPTION_TOPIC = "lk.transcription"
SUBSCRIBE_TIMEOUT = 30.0  # for someone to subscribe to a published WAV before it plays
LEAD_S = 0.5  # silence before a published WAV's audio


def emit(event: str, **fields: Any) -> None:
    sys.stdout.write(json.dumps({"event": event, **fields}) + "\n")
    sys.stdout.flush()


class User:
    def __init__(self, room: rtc.Room) -> None:
        self.room = room
        self.tasks: set[asyncio.Task[Any]] = set()
        self.recording: list[bytes] | None = None
        self.record_path = ""
        self.audio_track: rtc.Track | None = None
        self.video_track: rtc.Track | None = None
        self.stop_recording = asyncio.Event()
        self.left = asyncio.Event()

    def spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            emit("error", message=f"{type(task.exception()).__name__}: {task.exception()}")

    # -- room events ------------------------------------------------------------------------
    def attach(self) -> None:
        room = self.room

        @room.on("participant_connected")
        def _pc(p: rtc.RemoteParticipant) -> None:
            emit("participant_connected", identity=p.identity, kind=int(p.kind),
                 attributes=dict(p.attributes))

        @room.on("participant_disconnected")
        def _pd(p: rtc.RemoteParticipant) -> None:
            emit("participant_disconnected", identity=p.identity)

        @room.on("track_subscribed")
        def _ts(track: rtc.Track, pub: rtc.RemoteTrackPublication,
                p: rtc.RemoteParticipant) -> None:
            kind = "audio" if track.kind == rtc.TrackKind.KIND_AUDIO else "video"
            emit("track_subscribed", kind=kind, identity=p.identity, sid=pub.sid, name=pub.name)
            if kind == "audio" and self.audio_track is None:
                self.audio_track = track
            if kind == "video" and self.video_track is None:
                self.video_track = track

        @room.on("transcription_received")
        def _tr(segments: list[rtc.TranscriptionSegment], p: Any, pub: Any) -> None:
            for seg in segments:
                emit("transcription", via="legacy", text=seg.text, final=bool(seg.final),
                     identity=getattr(p, "identity", ""))

        @room.on("data_received")
        def _data(packet: rtc.DataPacket) -> None:
            emit("data", topic=packet.topic, text=packet.data.decode("utf-8", "replace"))

        @room.on("participant_attributes_changed")
        def _attrs(changed: dict[str, str], p: rtc.Participant) -> None:
            emit("attributes_changed", identity=p.identity, attributes=dict(p.attributes))

        @room.on("participant_metadata_changed")
        def _meta(p: rtc.Participant, old: str, new: str) -> None:
            emit("metadata_changed", identity=p.identity, metadata=new)

        @room.on("disconnected")
        def _disc(reason: Any) -> None:
            emit("disconnected", reason=str(reason))
            self.left.set()

        def on_transcription(reader: rtc.TextStreamReader, identity: str) -> None:
            async def read() -> None:
                text = await reader.read_all()
                attrs = dict(reader.info.attributes or {})
                emit("transcription", via="text_stream", text=text,
                     final=attrs.get("lk.transcription_final") == "true", identity=identity,
                     attributes=attrs)
            self.spawn(read())

        room.register_text_stream_handler(TRANSCRIPTION_TOPIC, on_transcription)

    def register_text_topic(self, topic: str) -> None:
        def handler(reader: rtc.TextStreamReader, identity: str) -> None:
            async def read() -> None:
                text = await reader.read_all()
                emit("text_stream", topic=topic, text=text, identity=identity,
                     attributes=dict(reader.info.attributes or {}))
            self.spawn(read())

        self.room.register_text_stream_handler(topic, handler)

    def register_byte_topic(self, topic: str) -> None:
        def handler(reader: rtc.ByteStreamReader, identity: str) -> None:
            async def read() -> None:
                chunks = [chunk async for chunk in reader]
                data = b"".join(chunks)
                emit("byte_stream", topic=topic, name=reader.info.name, size=len(data),
                     identity=identity, data_b64=base64.b64encode(data[:65536]).decode())
            self.spawn(read())

        self.room.register_byte_stream_handler(topic, handler)

    # -- commands ---------------------------------------------------------------------------
    async def publish_wav(self, path: str, pad_s: float = 1.0) -> None:
        with wave.open(path, "rb") as w:
            rate, channels, width = w.getframerate(), w.getnchannels(), w.getsampwidth()
            pcm = w.readframes(w.getnframes())
        if width != 2 or channels != 1:
            raise ValueError(f"{path}: expected mono 16-bit, got {channels} ch {width * 8} bit")
        source = rtc.AudioSource(rate, 1)
        track = rtc.LocalAudioTrack.create_audio_track("microphone", source)
        opts = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
        subscribed = asyncio.Event()

        def on_subscribed(sub_track: Any) -> None:
            if sub_track is track:
                subscribed.set()

        # Speak once the agent listens, as a person on a call does: audio sent before the
        # agent subscribed (and began reading the track) is never heard, and with ten rooms
        # subscribing at once the start of the question was lost.
        self.room.on("local_track_subscribed", on_subscribed)
        await self.room.local_participant.publish_track(track, opts)
        emit("published", what="audio")
        try:
            await asyncio.wait_for(subscribed.wait(), SUBSCRIBE_TIMEOUT)
        except asyncio.TimeoutError:
            emit("error", message=f"nobody subscribed to the audio within {SUBSCRIBE_TIMEOUT} s")
        finally:
            self.room.off("local_track_subscribed", on_subscribed)
        per_frame = rate * FRAME_MS // 1000
        # a moment of silence first, as a microphone has before its owner speaks
        pcm = b"\x00\x00" * int(rate * LEAD_S) + pcm
        pcm += b"\x00\x00" * int(rate * pad_s)
        frames = len(pcm) // 2 // per_frame
        for i in range(frames):
            chunk = pcm[i * per_frame * 2 : (i + 1) * per_frame * 2]
            await source.capture_frame(rtc.AudioFrame(chunk, rate, 1, per_frame))
        await source.wait_for_playout()
        emit("spoken", path=path, seconds=frames * FRAME_MS / 1000)

    async def record(self, path: str) -> None:
        while self.audio_track is None:
            await asyncio.sleep(0.02)
        self.recording = []
        self.record_path = path
        stream = rtc.AudioStream(self.audio_track, sample_rate=SAMPLE_RATE, num_channels=1)
        emit("recording")
        try:
            async def pump() -> None:
                async for ev in stream:
                    assert self.recording is not None
                    self.recording.append(bytes(ev.frame.data))

            pump_task = asyncio.ensure_future(pump())
            await self.stop_recording.wait()
            pump_task.cancel()
        finally:
            await stream.aclose()
        pcm = b"".join(self.recording)
        with wave.open(path, "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(SAMPLE_RATE)
            w.writeframes(pcm)
        emit("recorded", path=path, seconds=len(pcm) / 2 / SAMPLE_RATE)

    async def publish_video(self, width: int, height: int, frames: int, color: int) -> None:
        source = rtc.VideoSource(width, height)
        track = rtc.LocalVideoTrack.create_video_track("camera", source)
        opts = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_CAMERA)
        await self.room.local_participant.publish_track(track, opts)
        emit("published", what="video")
        data = bytes([color % 256, 64, 32, 255]) * (width * height)
        for _ in range(frames):
            frame = rtc.VideoFrame(width, height, rtc.VideoBufferType.RGBA, data)
            source.capture_frame(frame)
            await asyncio.sleep(1 / 30)

    async def subscribe_video(self, frames: int) -> None:
        while self.video_track is None:
            await asyncio.sleep(0.02)
        stream = rtc.VideoStream(self.video_track)
        count, width, height = 0, 0, 0
        async for ev in stream:
            count += 1
            width, height = ev.frame.width, ev.frame.height
            if count >= frames:
                break
        await stream.aclose()
        emit("video_frames", count=count, width=width, height=height)

    async def handle(self, msg: dict[str, Any]) -> None:
        cmd = msg["cmd"]
        local = self.room.local_participant
        if cmd == "publish_wav":
            self.spawn(self.publish_wav(msg["path"], float(msg.get("pad_s", 1.0))))
        elif cmd == "record":
            self.spawn(self.record(msg["path"]))
        elif cmd == "stop_record":
            self.stop_recording.set()
        elif cmd == "chat":
            payload = json.dumps({"message": msg["text"], "timestamp": 0, "id": "user-chat"})
            await local.publish_data(payload, reliable=True, topic="lk-chat-topic")
            emit("sent", what="chat")
        elif cmd == "send_text":
            await local.send_text(msg["text"], topic=msg.get("topic", ""))
            emit("sent", what="text")
        elif cmd == "stream_text":
            writer = await local.stream_text(topic=msg.get("topic", ""))
            for chunk in msg["chunks"]:
                await writer.write(chunk)
            await writer.aclose()
            emit("sent", what="stream_text")
        elif cmd == "send_bytes":
            data = base64.b64decode(msg["data_b64"])
            await local.send_bytes(data, topic=msg.get("topic", ""), name=msg.get("name"))
            emit("sent", what="bytes")
        elif cmd == "listen_text":
            self.register_text_topic(msg["topic"])
            emit("listening", topic=msg["topic"])
        elif cmd == "listen_bytes":
            self.register_byte_topic(msg["topic"])
            emit("listening", topic=msg["topic"])
        elif cmd == "register_rpc":
            reply, error = msg.get("reply", ""), msg.get("error")

            async def handler(data: rtc.RpcInvocationData) -> str:
                emit("rpc_request", method=data.method, payload=data.payload,
                     caller=data.caller_identity)
                if error is not None:
                    raise rtc.RpcError(1500, error)
                return str(reply) + data.payload

            local.register_rpc_method(msg["method"], handler)
            emit("rpc_registered", method=msg["method"])
        elif cmd == "perform_rpc":
            try:
                result = await local.perform_rpc(
                    destination_identity=msg["destination"], method=msg["method"],
                    payload=msg.get("payload", ""), response_timeout=msg.get("timeout", 10.0),
                )
                emit("rpc_result", payload=result)
            except rtc.RpcError as exc:
                emit("rpc_result", error=exc.message, code=exc.code)
        elif cmd == "set_attributes":
            await local.set_attributes(msg["attributes"])
            emit("sent", what="attributes")
        elif cmd == "set_metadata":
            await local.set_metadata(msg["metadata"])
            emit("sent", what="metadata")
        elif cmd == "publish_video":
            self.spawn(self.publish_video(int(msg.get("width", 64)), int(msg.get("height", 48)),
                                          int(msg.get("frames", 90)), int(msg.get("color", 200))))
        elif cmd == "subscribe_video":
            self.spawn(self.subscribe_video(int(msg.get("frames", 10))))
        elif cmd == "remote":
            emit("remote", participants={
                p.identity: {"attributes": dict(p.attributes), "metadata": p.metadata,
                             "tracks": [t.name for t in p.track_publications.values()]}
                for p in self.room.remote_participants.values()})
        elif cmd == "leave":
            self.stop_recording.set()
            for task in list(self.tasks):
                if task.get_coro().__name__ == "record":  # type: ignore[union-attr]
                    await asyncio.wait({task}, timeout=5)
            await self.room.disconnect()
            self.left.set()
        else:
            raise ValueError(f"unknown command {cmd!r}")


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--token", required=True)
    args = parser.parse_args()
    room = rtc.Room()
    user = User(room)
    user.attach()
    await room.connect(args.url, args.token)
    emit("connected", room=room.name, identity=room.local_participant.identity,
         remote=[p.identity for p in room.remote_participants.values()])
    for p in room.remote_participants.values():
        emit("participant_connected", identity=p.identity, kind=int(p.kind),
             attributes=dict(p.attributes))

    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=64 * 1024 * 1024)  # commands may carry payloads
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

    async def commands() -> None:
        while not user.left.is_set():
            line = await reader.readline()
            if not line:  # the test closed stdin: leave
                await user.handle({"cmd": "leave"})
                return
            try:
                await user.handle(json.loads(line))
            except Exception as exc:  # reported, the client stays up for the next command
                emit("error", message=f"{type(exc).__name__}: {exc}")

    cmd_task = asyncio.ensure_future(commands())
    await user.left.wait()
    cmd_task.cancel()
    for task in list(user.tasks):
        task.cancel()
    emit("left")


if __name__ == "__main__":
    asyncio.run(main())
