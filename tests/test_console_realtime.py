"""Real time is real time: the console's microphone and recorder keep their pace while the
agent holds the hub (a plugin decoding or synthesising on the hub)."""

from __future__ import annotations

import time
import wave
from pathlib import Path

import numpy as np
from speech import silence

from syncagents import JobContext, rtc
from syncagents._bridge import real_sleep
from syncagents.console import run_console
from syncagents.console.feeder import audio_from_samples
from syncagents.testing.local_room import USER_RATE
from syncagents.utils.audio import sine_frame

RATE = 24000
TONE_FRAMES = 60  # 0.6 s in 10 ms frames, all queued at once (the source holds 1 s)
STALL_S = 1.0  # the hub held this long while the tone plays: longer than the tone


def _voiced_runs(samples: np.ndarray, rate: int, peak: int = 300) -> list[tuple[int, int]]:
    """(first 10 ms frame, frame count) of every run of frames with sound in them."""
    hop = rate // 100
    n = len(samples) // hop
    voiced = np.abs(samples[: n * hop].astype(np.int32)).reshape(n, hop).max(axis=1) >= peak
    runs: list[tuple[int, int]] = []
    for i, on in enumerate(voiced):
        if on and (not runs or runs[-1][0] + runs[-1][1] != i):
            runs.append((i, 1))
        elif on:
            runs[-1] = (runs[-1][0], runs[-1][1] + 1)
    return runs


def test_agent_audio_lands_where_it_played_while_the_hub_is_held(tmp_path: Path) -> None:
    played: dict[str, float] = {}

    def entrypoint(ctx: JobContext) -> None:
        ctx.connect()
        source = rtc.AudioSource(RATE, 1, queue_size_ms=1000)
        track = rtc.LocalAudioTrack.create_audio_track("agent", source)
        ctx.room.local_participant.publish_track(track, timeout=10)
        tone = sine_frame(440, 0.01, RATE)
        # the tone plays from its first capture on (the queue is empty), 10 ms a frame
        played["start"] = time.monotonic() - ctx.room.connected_at
        for _ in range(TONE_FRAMES):
            source.capture_frame(tone, timeout=10)
        real_sleep(STALL_S)  # a plugin holds the hub while the tone plays
        source.wait_for_playout(timeout=10)

    out = tmp_path / "out.wav"
    result = run_console(entrypoint, output_path=str(out), idle_s=0.3, max_duration=30)
    assert result.exit_code == 0, result.reason
    with wave.open(str(out), "rb") as w:
        rate = w.getframerate()
        samples = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    assert rate == RATE
    runs = _voiced_runs(samples, rate)
    # the tone in one piece, its frames back to back as they played...
    assert len(runs) == 1 and abs(runs[0][1] - TONE_FRAMES) <= 1, runs
    # ...where it played: read after the stall, placed by arrival, it would start STALL_S
    # late; the bound is far below the stall, generous for a loaded machine
    expected = round(played["start"] * 100)
    assert abs(runs[0][0] - expected) <= 25, (runs, expected)


def test_the_users_audio_is_never_dropped_to_catch_up(tmp_path: Path) -> None:
    """The microphone catches up on a stall by skipping silence that should have played,
    never a frame of the user's clip: the agent hears every frame of it, in order."""
    tone = np.frombuffer(sine_frame(440, 0.5, USER_RATE).data, dtype=np.int16)
    ramp = (tone.astype(np.int32) * np.linspace(0.2, 1.0, tone.size)).astype(np.int16)
    clip = audio_from_samples(
        np.concatenate([silence(0.2, USER_RATE), ramp, silence(0.2, USER_RATE)]), "ramp"
    )
    heard: list[bytes] = []

    def entrypoint(ctx: JobContext) -> None:
        ctx.connect()
        ctx.wait_for_participant(timeout=10)
        stream = rtc.AudioStream(ctx.room.user_track, USER_RATE, 1)
        stalled = False
        for ev in stream:
            data = bytes(ev.frame.data)
            if np.abs(np.frombuffer(data, dtype=np.int16)).max(initial=0) >= 300:
                heard.append(data)
                if not stalled:
                    stalled = True
                    real_sleep(0.5)  # the hub held while the user speaks
            elif heard:
                return  # the clip is over

    result = run_console(entrypoint, inputs=[clip], idle_s=0.3, max_duration=30)
    assert result.reason in ("done", "job ended"), result.reason
    voiced = [
        bytes(f.data)
        for f in clip.frames
        if np.abs(np.frombuffer(f.data, dtype=np.int16)).max(initial=0) >= 300
    ]
    assert heard == voiced
