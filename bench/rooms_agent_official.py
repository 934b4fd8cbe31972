"""The livekit-agents (official, asyncio) side of ``bench/rooms.py``: the same echo agent as
``rooms_agent_sync.py``, written the livekit-agents way. Runs in its own venv (livekit-agents
1.8.9 + livekit-plugins-silero); never imports syncagents.

Every room gets a job (automatic dispatch), each in its own process (the official worker's
design). The job joins audio-only, listens to the user's microphone through silero VAD and,
at each END_OF_SPEECH, plays the utterance's audio (the frames the event carries, near-silent
edges trimmed) back on its own published track.

Options differ from the defaults only where the bench needs it: ``load_fnc`` reports 0 so
the worker never turns rooms away (syncagents' app does the same), and process start-up gets
30 s instead of 10 s so a burst of 50 rooms on 2 cores is not cut short at start-up.

    LIVEKIT_URL=... LIVEKIT_API_KEY=... LIVEKIT_API_SECRET=... python rooms_agent_official.py start
"""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
from livekit import rtc
from livekit.agents import AutoSubscribe, JobContext, JobProcess, WorkerOptions, cli
from livekit.agents import vad as agents_vad
from livekit.plugins import silero

RATE = 16000
FRAME = RATE // 50  # 20 ms per capture
EDGE_DB = -40.0


def prewarm(proc: JobProcess) -> None:
    proc.userdata["vad"] = silero.VAD.load(prefix_padding_duration=0.1)


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


async def entrypoint(ctx: JobContext) -> None:
    found: asyncio.Future[rtc.Track] = asyncio.get_running_loop().create_future()

    @ctx.room.on("track_subscribed")
    def _subscribed(track: rtc.Track, publication: Any, participant: Any) -> None:
        if track.kind == rtc.TrackKind.KIND_AUDIO and not found.done():
            found.set_result(track)

    await ctx.connect(auto_subscribe=AutoSubscribe.AUDIO_ONLY)
    for participant in ctx.room.remote_participants.values():
        for pub in participant.track_publications.values():
            audio = pub.track is not None and pub.kind == rtc.TrackKind.KIND_AUDIO
            if audio and not found.done():
                found.set_result(pub.track)
    track = await asyncio.wait_for(found, 60)

    vad_stream = ctx.proc.userdata["vad"].stream()
    audio = rtc.AudioStream(track, sample_rate=RATE, num_channels=1, frame_size_ms=20)

    async def listen() -> None:
        async for ev in audio:
            vad_stream.push_frame(ev.frame)
        vad_stream.end_input()

    source = rtc.AudioSource(RATE, 1, queue_size_ms=200)
    echo = rtc.LocalAudioTrack.create_audio_track("echo", source)
    replies: asyncio.Queue[np.ndarray] = asyncio.Queue()

    async def speak() -> None:
        while True:
            samples = await replies.get()
            for i in range(0, len(samples), FRAME):
                chunk = samples[i : i + FRAME]
                await source.capture_frame(rtc.AudioFrame(chunk.tobytes(), RATE, 1, len(chunk)))

    tasks = [asyncio.ensure_future(listen()), asyncio.ensure_future(speak())]
    options = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
    await ctx.room.local_participant.publish_track(echo, options)

    try:
        async for ev in vad_stream:
            if ev.type == agents_vad.VADEventType.END_OF_SPEECH and ev.frames:
                samples = np.concatenate(
                    [np.frombuffer(bytes(f.data), dtype=np.int16) for f in ev.frames]
                )
                utterance = voiced(samples)
                if len(utterance):
                    replies.put_nowait(utterance)
    finally:
        for task in tasks:
            task.cancel()


if __name__ == "__main__":
    cli.run_app(
        WorkerOptions(
            entrypoint_fnc=entrypoint,
            prewarm_fnc=prewarm,
            load_fnc=lambda: 0.0,
            initialize_process_timeout=30.0,
            port=0,
        )
    )
