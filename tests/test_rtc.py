"""The blocking rtc facade over the real livekit FFI (no server: local track → stream)."""

from __future__ import annotations

import gc
import subprocess
import sys
import time

import gevent
import gevent.event
import numpy as np
import psutil
import pytest
from greenlet import getcurrent

from syncagents import _bridge, rtc

RATE = 48000
SAMPLES = 480  # 10 ms


def _frame(i: int) -> rtc.AudioFrame:
    # each frame carries its index in its first sample so order and loss are checkable
    data = np.full(SAMPLES, 0, dtype=np.int16)
    data[0] = i % 30000
    return rtc.AudioFrame(data.tobytes(), RATE, 1, SAMPLES)


def _ticker(lateness: list[float]) -> None:
    while True:
        t = time.perf_counter()
        gevent.sleep(0.005)
        lateness.append(time.perf_counter() - t - 0.005)


def test_source_to_stream_with_plain_for_loop_while_hub_ticks() -> None:
    n = 3000  # a burst of this size deadlocked livekit's FFI queue with patched locks
    src = rtc.AudioSource(RATE, 1, queue_size_ms=0)
    track = rtc.LocalAudioTrack.create_audio_track("burst", src)
    stream = rtc.AudioStream(track, RATE, 1)
    lateness: list[float] = []
    tk = gevent.spawn(_ticker, lateness)
    received: list[int] = []

    def consume() -> None:
        for ev in stream:
            assert isinstance(ev, rtc.AudioFrameEvent)
            received.append(ev.frame.samples_per_channel)
            if len(received) >= n - 10:  # the tail may stay inside livekit's 10 ms chunker
                break

    def produce() -> None:
        for i in range(n):
            src.capture_frame(_frame(i))

    c, p = gevent.spawn(consume), gevent.spawn(produce)
    gevent.joinall([c, p], timeout=60, raise_error=True)
    tk.kill()
    stream.close()
    src.close()
    assert c.dead and p.dead, "media path stalled (FFI deadlock?)"
    assert len(received) >= n - 10
    assert set(received) == {SAMPLES}
    assert lateness, "the hub never ran another greenlet during the burst"
    # (how late it ran is a bench figure: bench/bridge.py, not a test on a shared machine)


def test_capture_frame_paces_at_real_time_with_queue() -> None:
    src = rtc.AudioSource(RATE, 1, queue_size_ms=100)
    track = rtc.LocalAudioTrack.create_audio_track("paced", src)
    stream = rtc.AudioStream(track, RATE, 1)
    reader = gevent.spawn(lambda: [ev for _, ev in zip(range(10_000), stream)])
    t0 = time.monotonic()
    for i in range(50):  # 0.5 s of audio through a 0.1 s queue: backpressure paces us
        src.capture_frame(_frame(i))
    elapsed = time.monotonic() - t0
    src.wait_for_playout(timeout=5)
    assert elapsed > 0.25, elapsed  # paced: 0.5 s of audio can't go through a 0.1 s queue faster
    stream.close()
    reader.join(timeout=5)
    src.close()


def test_clear_queue_drops_pending_audio() -> None:
    src = rtc.AudioSource(RATE, 1, queue_size_ms=1000)
    for i in range(50):
        src.capture_frame(_frame(i))
    assert src.queued_duration > 0.2
    src.clear_queue()
    assert src.queued_duration < 0.05
    src.wait_for_playout(timeout=1)
    src.close()


def test_wrong_frame_format_is_a_clear_error() -> None:
    src = rtc.AudioSource(RATE, 1)
    with pytest.raises(ValueError, match="resample"):
        src.capture_frame(rtc.AudioFrame(b"\0\0" * 160, 16000, 1, 160))
    src.close()


def test_stream_close_from_another_greenlet_ends_the_loop() -> None:
    src = rtc.AudioSource(RATE, 1, queue_size_ms=0)
    track = rtc.LocalAudioTrack.create_audio_track("idle", src)
    with rtc.AudioStream(track) as stream:
        ended = gevent.event.Event()

        def reader() -> None:
            for _ in stream:
                pass
            ended.set()

        g = gevent.spawn(reader)
        gevent.sleep(0)  # let the reader start waiting
        stream.close()
        assert ended.wait(5)
        g.join(timeout=5)
    with rtc.AudioStream(track) as silent, pytest.raises(TimeoutError):
        silent.next(timeout=0.1)
    src.close()


def _live_greenlets() -> int:
    return sum(1 for o in gc.get_objects() if isinstance(o, gevent.Greenlet) and not o.dead)


def test_connect_to_closed_port_fails_fast_and_leaves_nothing_behind() -> None:
    _bridge.loop()  # the bridge itself is process-wide: start it before the baseline
    warm = rtc.Room()
    with pytest.raises((rtc.ConnectError, TimeoutError)):
        warm.connect("ws://127.0.0.1:9", "token", timeout=5)  # warms up the native runtime
    proc = psutil.Process()
    threads, greenlets, tasks = proc.num_threads(), _live_greenlets(), _bridge.pending_tasks()

    room = rtc.Room()
    t0 = time.monotonic()
    with pytest.raises(rtc.ConnectError) as info:
        room.connect("ws://127.0.0.1:9", "token", timeout=5)
    assert time.monotonic() - t0 < 5
    assert "127.0.0.1:9" in str(info.value)
    assert not room.isconnected()
    assert _bridge.pending_tasks() <= tasks
    assert _live_greenlets() <= greenlets
    assert proc.num_threads() <= threads


def test_room_event_handlers_run_in_greenlets_not_the_loop_thread() -> None:
    room = rtc.Room()
    seen = gevent.event.AsyncResult()

    @room.on("participant_connected")
    def on_participant(participant: object) -> None:
        seen.set((participant, getcurrent(), _bridge.in_loop_thread()))

    room._ensure()
    # emit exactly as livekit does: from its event emitter, on the asyncio thread
    _bridge.call(room._lk.emit, "participant_connected", "alice")
    participant, where, on_loop = seen.get(timeout=5)
    assert participant == "alice"
    assert isinstance(where, gevent.Greenlet)
    assert not on_loop


def test_interpreter_exit_is_clean_with_live_media_objects() -> None:
    code = (
        "import syncagents\n"
        "from syncagents import rtc\n"
        "src = rtc.AudioSource(48000, 1, queue_size_ms=0)\n"
        "track = rtc.LocalAudioTrack.create_audio_track('t', src)\n"
        "stream = rtc.AudioStream(track)\n"
        "for i in range(100):\n"
        "    src.capture_frame(rtc.AudioFrame(b'\\0\\0' * 480, 48000, 1, 480))\n"
        "print(stream.next(timeout=5).frame.sample_rate)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "48000"
    assert "panic" not in out.stderr.lower()
