"""The users of ``bench/rooms.py``: N LiveKit users, one per room, in one asyncio process.

Written the way a LiveKit user's app is written: livekit's own ``livekit.rtc`` SDK on asyncio.
It never imports syncagents, so it is independent of the code under test.

Each user joins its room (automatic dispatch gives every new room an agent job), publishes a
microphone that sends audio all the time (silence between utterances, as a real microphone
does), and subscribes to the agent's track. Every ``--period`` seconds (rooms staggered evenly
over one period) it speaks one of the WAV clips, whose first and last samples are voiced.
The reply latency is measured as the user hears it: from the moment the last voiced sample
left the user's audio queue to the arrival of the first agent frame whose RMS is above
``--threshold-db``. No such frame within ``--reply-timeout`` seconds is a missed reply.

Timeline: join the rooms one every ``--join-interval`` s, wait (bounded) until each room's
agent track is subscribed, one warm-up utterance per room (not counted), then ``--duration``
seconds of measured utterances. An utterance during which the agent was already heard (its VAD
cut the utterance, or an earlier reply still played) is counted as ``overlapped``, not timed.
Output, one JSON object a line on stdout: ``connected``, ``ready`` {ready, rooms},
``measure_start``, ``measure_end`` (both with ``t`` = time.time(), for the bench's CPU
window), ``result`` {latencies_ms, missed, overlapped, users_cpu_s, users_loop_lag_ms, ...},
``done``; ``error`` {message} whenever something fails.

    python rooms_users.py --url ws://... --api-key K --api-secret S --rooms 10 --clips a.wav ...
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import wave
from typing import Any

import numpy as np
from livekit import api, rtc

RATE = 48000  # the microphone's rate, as a browser's
# Few, larger frames: livekit.rtc hands every native event to every subscriber's filter
# (FfiQueue.put), so with N rooms in one process each event costs O(N). 100 ms captures and
# 50 ms received frames keep this process's CPU (which shares the 2 cores with the agent
# under test) low; the reply onset is still located to 10 ms inside the received frame.
CAPTURE_MS = 100
QUEUE_MS = 200  # what the microphone may run ahead of real time
RECV_RATE = 16000
RECV_MS = 50
BLOCK = RECV_RATE // 100  # 10 ms


def emit(event: str, **fields: Any) -> None:
    sys.stdout.write(json.dumps({"event": event, "t": time.time(), **fields}) + "\n")
    sys.stdout.flush()


def load_clip(path: str) -> np.ndarray:
    """A mono 16-bit WAV, resampled to RATE with livekit's resampler."""
    with wave.open(path, "rb") as w:
        rate, channels, width = w.getframerate(), w.getnchannels(), w.getsampwidth()
        pcm = w.readframes(w.getnframes())
    if channels != 1 or width != 2:
        raise ValueError(f"{path}: expected mono 16-bit")
    if rate == RATE:
        return np.frombuffer(pcm, dtype=np.int16).copy()
    resampler = rtc.AudioResampler(rate, RATE, num_channels=1)
    frame = rtc.AudioFrame(pcm, rate, 1, len(pcm) // 2)
    out = [*resampler.push(frame), *resampler.flush()]
    return np.concatenate([np.frombuffer(bytes(f.data), dtype=np.int16) for f in out])


def first_loud_block(samples: np.ndarray, threshold_db: float) -> int | None:
    """Index of the first 10 ms block whose RMS is above ``threshold_db`` dBFS."""
    n = len(samples) // BLOCK
    if n == 0:
        return None
    x = samples[: n * BLOCK].astype(np.float32).reshape(n, BLOCK) / 32768.0
    loud = np.nonzero(10 * np.log10((x * x).mean(axis=1) + 1e-12) > threshold_db)[0]
    return int(loud[0]) if len(loud) else None


class User:
    def __init__(
        self,
        index: int,
        room_name: str,
        token: str,
        args: argparse.Namespace,
        clips: list[np.ndarray],
        stats: dict[str, Any],
    ) -> None:
        self.index = index
        self.room_name = room_name
        self.token = token
        self.args = args
        self.clips = clips
        self.stats = stats
        self.room = rtc.Room()
        self.agent_track: rtc.Track | None = None
        self.agent_ready = asyncio.Event()
        self.speech: list[np.ndarray] = []  # pending frames of the utterance being spoken
        # (end of speech, "warmup" | "counted" | "overlapped") while a reply is awaited
        self.expect: tuple[float, str] | None = None
        self.speaking_from = float("inf")  # when the current utterance is heard to start
        self.overlapped = False  # the agent was heard while the user spoke
        self.next_utterance = 0.0  # monotonic time of the next utterance (0: not yet)
        self.counted_from = float("inf")
        self.counted_until = float("inf")
        self.spoken = 0
        self.started = 0.0
        self.tasks: list[asyncio.Task[Any]] = []

        @self.room.on("track_subscribed")
        def _subscribed(
            track: rtc.Track, pub: rtc.RemoteTrackPublication, participant: rtc.RemoteParticipant
        ) -> None:
            if track.kind == rtc.TrackKind.KIND_AUDIO and self.agent_track is None:
                self.agent_track = track
                self.tasks.append(asyncio.ensure_future(self.listen(track)))

    async def connect(self, url: str) -> None:
        await self.room.connect(url, self.token)
        self.source = rtc.AudioSource(RATE, 1, queue_size_ms=QUEUE_MS)
        track = rtc.LocalAudioTrack.create_audio_track("microphone", self.source)
        opts = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
        await self.room.local_participant.publish_track(track, opts)
        self.tasks.append(asyncio.ensure_future(self.microphone()))

    # -- the microphone: real-time audio, silence between utterances ------------------------
    async def microphone(self) -> None:
        while True:
            try:
                await self._microphone()
            except Exception as exc:  # reported; the microphone goes on
                emit("error", room=self.room_name, message=f"mic: {type(exc).__name__}: {exc}")
                await asyncio.sleep(0.1)

    async def _microphone(self) -> None:
        per_frame = RATE * CAPTURE_MS // 1000
        silence = rtc.AudioFrame(b"\x00\x00" * per_frame, RATE, 1, per_frame)
        while True:
            now = time.monotonic()
            if not self.speech and self.next_utterance and now >= self.next_utterance:
                self.start_utterance(now)
            if self.speech:
                chunk = self.speech.pop(0)
                frame = rtc.AudioFrame(chunk.tobytes(), RATE, 1, len(chunk))
                await self.source.capture_frame(frame)
                if not self.speech:  # that was the last voiced sample
                    end = time.monotonic() + self.source.queued_duration
                    counted = self.counted_from <= self.started <= self.counted_until
                    kind = "warmup" if not counted else "counted"
                    if counted and self.overlapped:
                        kind = "overlapped"
                        self.stats["overlapped"] += 1
                    self.expect = (end, kind)
                    self.speaking_from = float("inf")
                    self.tasks.append(asyncio.ensure_future(self.deadline(end)))
            else:
                await self.source.capture_frame(silence)

    def start_utterance(self, now: float) -> None:
        clip = self.clips[(self.index + self.spoken) % len(self.clips)]
        per_frame = RATE * CAPTURE_MS // 1000
        self.speech = [clip[i : i + per_frame] for i in range(0, len(clip), per_frame)]
        self.started = now
        self.speaking_from = now + self.source.queued_duration + 0.3
        self.overlapped = False
        self.spoken += 1
        self.next_utterance += self.args.period
        if self.expect is not None:  # the previous reply never came: missed
            self.settle(None)

    async def deadline(self, end: float) -> None:
        await asyncio.sleep(max(0.0, end + self.args.reply_timeout - time.monotonic()))
        if self.expect is not None and self.expect[0] == end:
            self.settle(None)

    def settle(self, latency_s: float | None) -> None:
        assert self.expect is not None
        kind = self.expect[1]
        self.expect = None
        if kind == "warmup":
            self.stats["warmup_missed" if latency_s is None else "warmup_ok"] += 1
        elif kind == "overlapped":
            pass  # the agent answered during the utterance: no latency to give
        elif latency_s is None:
            self.stats["missed"] += 1
            self.stats["missed_rooms"].add(self.index)
        else:
            self.stats["latencies_ms"].append(round(latency_s * 1000, 2))

    # -- the ear: the first loud agent frame after the end of speech ------------------------
    async def listen(self, track: rtc.Track) -> None:
        self.agent_ready.set()
        stream = rtc.AudioStream(
            track, sample_rate=RECV_RATE, num_channels=1, frame_size_ms=RECV_MS
        )
        threshold = self.args.threshold_db
        async for ev in stream:
            expect = self.expect
            if expect is None and self.speaking_from == float("inf"):
                continue
            now = time.monotonic()
            data = np.frombuffer(bytes(ev.frame.data), dtype=np.int16)
            block = first_loud_block(data, threshold)
            if block is None:
                continue
            # the frame arrived when its last sample did: its loud block came that much earlier
            heard = now - (len(data) - (block + 1) * BLOCK) / RECV_RATE
            if heard >= self.speaking_from:
                # the agent talks while the user still speaks: its VAD cut the utterance
                # (a gap in the audio), or an earlier reply is still playing
                self.overlapped = True
            elif expect is not None and heard >= expect[0]:
                self.settle(heard - expect[0])


async def ticker(lags: list[float], period: float = 0.01) -> None:
    """How late this process's own loop wakes: a harness that falls behind real time
    sends gaps and late audio, whatever the agent does."""
    while True:
        t = time.perf_counter()
        await asyncio.sleep(period)
        lags.append((time.perf_counter() - t - period) * 1000)


async def connect_all(users: list[User], url: str, timeout: float, interval: float) -> int:
    """Join the rooms one every ``interval`` s (rooms arrive over time, as they do in
    production, not in one burst). Returns how many joins failed or were still pending after
    ``timeout`` s. A pending join is left to finish, never cancelled: livekit's native side
    waits for the SDK's ReadyForRoomEvent after its connect callback, and a join cancelled
    between the two makes it panic and SIGTERM the whole process."""
    failed = 0

    async def one(i: int, u: User) -> None:
        nonlocal failed
        await asyncio.sleep(i * interval)
        try:
            await u.connect(url)
        except Exception as exc:
            failed += 1
            emit("error", room=u.room_name, message=f"{type(exc).__name__}: {exc}")

    tasks = [asyncio.ensure_future(one(i, u)) for i, u in enumerate(users)]
    _, pending = await asyncio.wait(tasks, timeout=timeout)
    return failed + len(pending)


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--api-key", required=True)
    ap.add_argument("--api-secret", required=True)
    ap.add_argument("--rooms", type=int, required=True)
    ap.add_argument("--prefix", default="bench")
    ap.add_argument("--clips", nargs="+", required=True)
    ap.add_argument("--period", type=float, default=6.0, help="seconds between utterances")
    ap.add_argument("--duration", type=float, default=40.0, help="measured seconds")
    ap.add_argument("--reply-timeout", type=float, default=5.0)
    ap.add_argument("--join-interval", type=float, default=0.5, help="s between room joins")
    ap.add_argument(
        "--ready-timeout", type=float, default=120.0, help="joins + agents, all rooms (s)"
    )
    ap.add_argument("--threshold-db", type=float, default=-40.0)
    args = ap.parse_args()

    clips = [load_clip(p) for p in args.clips]
    stats: dict[str, Any] = {
        "latencies_ms": [],
        "missed": 0,
        "missed_rooms": set(),
        "warmup_ok": 0,
        "warmup_missed": 0,
        "overlapped": 0,
    }
    users = []
    for i in range(args.rooms):
        name = f"{args.prefix}-{i:03d}"
        grants = api.VideoGrants(room_join=True, room=name, can_publish=True, can_subscribe=True)
        token = (
            api.AccessToken(args.api_key, args.api_secret)
            .with_identity(f"user-{i}")
            .with_grants(grants)
            .to_jwt()
        )
        users.append(User(i, name, token, args, clips, stats))

    t_connect = time.monotonic()
    ready_by = t_connect + args.ready_timeout
    failed = await connect_all(users, args.url, args.ready_timeout, args.join_interval)
    emit(
        "connected", rooms=args.rooms, failed=failed, seconds=round(time.monotonic() - t_connect, 2)
    )
    try:
        await asyncio.wait_for(
            asyncio.gather(*(u.agent_ready.wait() for u in users)),
            max(0.1, ready_by - time.monotonic()),
        )
    except asyncio.TimeoutError:
        pass
    ready = sum(u.agent_ready.is_set() for u in users)
    emit("ready", ready=ready, rooms=args.rooms, seconds=round(time.monotonic() - t_connect, 2))

    # one warm-up utterance per room, staggered over one period, then the measured ones
    start = time.monotonic() + 0.5
    measure_from = start + args.period
    measure_until = measure_from + args.duration
    for i, u in enumerate(users):
        u.next_utterance = start + i * args.period / len(users)
        u.counted_from = measure_from
        u.counted_until = measure_until
    await asyncio.sleep(measure_from - time.monotonic())
    lags: list[float] = []
    lag_task = asyncio.ensure_future(ticker(lags))
    cpu0 = time.process_time()
    emit("measure_start")
    await asyncio.sleep(max(0.0, measure_until - time.monotonic()))
    emit("measure_end")
    cpu = time.process_time() - cpu0
    lag_task.cancel()
    lags.sort()
    loop_lag = {
        "p99": round(lags[int(0.99 * (len(lags) - 1))], 1) if lags else None,
        "max": round(lags[-1], 1) if lags else None,
    }
    for u in users:  # no utterance starts after the window; wait for the last replies
        u.next_utterance = float("inf")
    longest = max(len(c) for c in clips) / RATE
    await asyncio.sleep(longest + args.reply_timeout + 1.0)  # the last utterance, its reply
    for u in users:
        if u.expect is not None:
            u.settle(None)
    emit(
        "result",
        latencies_ms=stats["latencies_ms"],
        missed=stats["missed"],
        missed_rooms=sorted(stats["missed_rooms"]),
        warmup_ok=stats["warmup_ok"],
        warmup_missed=stats["warmup_missed"],
        overlapped=stats["overlapped"],
        users_loop_lag_ms=loop_lag,
        ready=ready,
        rooms=args.rooms,
        users_cpu_s=round(cpu, 2),
        window_s=args.duration,
    )

    for u in users:
        for task in u.tasks:
            task.cancel()
    await asyncio.wait([asyncio.ensure_future(u.room.disconnect()) for u in users], timeout=10)
    emit("done")


if __name__ == "__main__":
    asyncio.run(main())
