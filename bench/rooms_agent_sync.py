"""The syncagents side of ``bench/rooms.py``: an echo agent in blocking style.

Every room gets a job (automatic dispatch). The job joins audio-only, listens to the user's
microphone through silero VAD and, at each END_OF_SPEECH, plays the utterance's audio (the
frames the event carries, near-silent edges trimmed) back on its own published track. The
same logic, in asyncio on livekit-agents, is ``rooms_agent_official.py``.

A ticker greenlet measures how late the hub wakes it (every ``TICK_S``) and appends one JSON
line per second to ``$BENCH_LAG_FILE``: ``{"t": time.time(), "lag_ms": [...]}``.

    syncagents run bench/rooms_agent_sync.py
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import gevent
import gevent.event
import gevent.queue
import numpy as np

from syncagents import AutoSubscribe, JobContext, WorkerOptions, rtc
from syncagents.plugins import silero
from syncagents.vad import VADEventType

RATE = 16000  # the VAD's rate: the agent listens and answers at it
FRAME = RATE // 50  # 20 ms per capture, as a TTS would hand them over
EDGE_DB = -40.0  # near-silent edges of an utterance are not echoed
TICK_S = 0.01


def _ticker(path: str) -> None:
    lags: list[float] = []
    flushed = time.monotonic()
    with open(path, "a") as out:
        while True:
            t = time.perf_counter()
            gevent.sleep(TICK_S)
            lags.append(round((time.perf_counter() - t - TICK_S) * 1000, 2))
            if time.monotonic() - flushed >= 1.0:
                out.write(json.dumps({"t": time.time(), "lag_ms": lags}) + "\n")
                out.flush()
                lags, flushed = [], time.monotonic()


def prewarm() -> dict[str, Any]:
    lag_file = os.environ.get("BENCH_LAG_FILE")
    if lag_file:
        gevent.spawn(_ticker, lag_file)
    return {"vad": silero.VAD(prefix_padding_duration=0.1)}


def voiced(samples: np.ndarray, rate: int = RATE, threshold_db: float = EDGE_DB) -> np.ndarray:
    """``samples`` without the near-silent 10 ms blocks at either end."""
    block = rate // 100
    n = len(samples) // block
    if n == 0:
        return samples[:0]
    x = samples[: n * block].astype(np.float32).reshape(n, block) / 32768.0
    loud = np.nonzero(10 * np.log10((x * x).mean(axis=1) + 1e-12) > threshold_db)[0]
    if len(loud) == 0:
        return samples[:0]
    return samples[loud[0] * block : (loud[-1] + 1) * block]


def _user_track(ctx: JobContext, found: gevent.event.AsyncResult) -> None:
    for participant in list(ctx.room.remote_participants.values()):
        for pub in list(participant.track_publications.values()):
            track = getattr(pub, "track", None)
            if track is not None and pub.kind == rtc.TrackKind.KIND_AUDIO:
                found.set(track)
                return


def entrypoint(ctx: JobContext) -> None:
    found: gevent.event.AsyncResult = gevent.event.AsyncResult()

    @ctx.room.on("track_subscribed")
    def _subscribed(track: Any, publication: Any, participant: Any) -> None:
        if track.kind == rtc.TrackKind.KIND_AUDIO and not found.ready():
            found.set(track)

    # the official agent's ctx.connect() has no timeout of its own; 60 s keeps a join slowed
    # by a loaded machine from failing at syncagents' default of 10 s
    ctx.connect(auto_subscribe=AutoSubscribe.AUDIO_ONLY, timeout=60)
    _user_track(ctx, found)
    track = found.get(timeout=60)

    vad = ctx.userdata["vad"] if ctx.userdata else silero.VAD(prefix_padding_duration=0.1)
    vad_stream = vad.stream()
    audio = rtc.AudioStream(track, RATE, 1, frame_size_ms=20)

    def listen() -> None:
        for ev in audio:
            vad_stream.push_frame(ev.frame)
        vad_stream.end_input()

    source = rtc.AudioSource(RATE, 1, queue_size_ms=200)
    echo = rtc.LocalAudioTrack.create_audio_track("echo", source)
    replies: gevent.queue.Queue[np.ndarray] = gevent.queue.Queue()

    def speak() -> None:
        for samples in replies:
            for i in range(0, len(samples), FRAME):
                chunk = samples[i : i + FRAME]
                source.capture_frame(rtc.AudioFrame(chunk.tobytes(), RATE, 1, len(chunk)))

    ctx.spawn(listen)
    ctx.spawn(speak)
    # published once the agent listens: a user who hears the track can be heard
    options = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
    ctx.agent.publish_track(echo, options)

    for ev in vad_stream:
        if ev.type is VADEventType.END_OF_SPEECH and ev.frames:
            samples = np.concatenate(
                [np.frombuffer(bytes(f.data), dtype=np.int16) for f in ev.frames]
            )
            utterance = voiced(samples)
            if len(utterance):
                replies.put(utterance)


opts = WorkerOptions(entrypoint_fnc=entrypoint, prewarm_fnc=prewarm, load_fnc=lambda: 0.0)
