"""plugins.silero.VAD on generated speech: segment edges, silence, per-stream state, hub lag."""

from __future__ import annotations

import time
from typing import Any

import gevent
import numpy as np
import pytest
from gevent.pool import Group
from speech import compose, resample, silence, to_frames

from syncagents import Plugin, to_thread, vad
from syncagents.plugins import silero
from syncagents.plugins.silero._model import pool_for

TOLERANCE = 0.1  # seconds between a detected edge and the true one


@pytest.fixture(scope="module")
def two_utterances() -> tuple[np.ndarray, list[tuple[float, float]]]:
    return compose(
        1.0, "What is the weather like today?", 1.0, "Please call me tomorrow morning.", 1.0
    )


def segments(stream: vad.VADStream, timeout: float = 20.0) -> list[tuple[float, float]]:
    """(start, end) of each detected segment, from the START/END events' timings."""
    out: list[tuple[float, float]] = []
    start: float | None = None
    with gevent.Timeout(timeout):
        for ev in stream:
            if ev.type is vad.VADEventType.START_OF_SPEECH:
                assert start is None, "two START_OF_SPEECH without END_OF_SPEECH"
                start = ev.timestamp - ev.speech_duration
            elif ev.type is vad.VADEventType.END_OF_SPEECH:
                assert start is not None, "END_OF_SPEECH without START_OF_SPEECH"
                out.append((start, ev.timestamp - ev.silence_duration))
                start = None
    assert start is None, "a segment never ended"
    return out


def run(v: silero.VAD, frames: list[Any]) -> list[tuple[float, float]]:
    stream = v.stream()
    for frame in frames:
        stream.push_frame(frame)
    stream.end_input()
    return segments(stream)


def test_registered() -> None:
    assert any(p.title == "silero" for p in Plugin.registered_plugins)


@pytest.mark.parametrize("frame_ms", [10, 20, 32])
def test_segments_match_the_speech(
    two_utterances: tuple[np.ndarray, list[tuple[float, float]]], frame_ms: int
) -> None:
    audio, truth = two_utterances
    assert len(truth) == 2
    found = run(silero.VAD(), to_frames(audio, 16000, frame_ms))
    assert len(found) == 2, f"expected 2 segments, got {found} (true: {truth})"
    for (start, end), (true_start, true_end) in zip(found, truth):
        assert abs(start - true_start) <= TOLERANCE, (found, truth)
        assert abs(end - true_end) <= TOLERANCE, (found, truth)


def test_other_input_rates_and_channels(
    two_utterances: tuple[np.ndarray, list[tuple[float, float]]],
) -> None:
    # 48 kHz stereo in: the base class downmixes and resamples before silero sees it
    audio, truth = two_utterances
    loud = resample(audio, 16000, 48000)
    found = run(silero.VAD(), to_frames(loud, 48000, 10, num_channels=2))
    assert len(found) == 2, found
    for (start, end), (true_start, true_end) in zip(found, truth):
        assert abs(start - true_start) <= TOLERANCE and abs(end - true_end) <= TOLERANCE


def test_no_speech_in_silence() -> None:
    quiet = silence(3.0)
    rng = np.random.default_rng(1)
    hiss = (rng.standard_normal(3 * 16000) * 30).astype(np.int16)  # -60 dBFS noise floor
    v = silero.VAD()
    assert run(v, to_frames(quiet)) == []
    assert run(v, to_frames(hiss)) == []


def probabilities(v: silero.VAD, frames: list[Any]) -> list[float]:
    stream = v.stream()
    for frame in frames:
        stream.push_frame(frame)
    stream.end_input()
    with gevent.Timeout(20):
        return [
            ev.probability for ev in stream if ev.type is vad.VADEventType.INFERENCE_DONE
        ]


def test_each_stream_starts_with_fresh_state(
    two_utterances: tuple[np.ndarray, list[tuple[float, float]]],
) -> None:
    # Streams reuse pooled models: a reused model must be reset, so the same audio gives the
    # same probabilities whatever the model heard before.
    audio, _ = two_utterances
    frames = to_frames(audio[: 3 * 16000])
    v = silero.VAD()
    first = probabilities(v, frames)
    second = probabilities(v, frames)
    assert len(first) == len(second) > 50
    assert max(first) > 0.9  # it did hear speech, so its state had something to forget
    np.testing.assert_allclose(first, second, atol=1e-6)


def test_predictor_window_contract() -> None:
    v = silero.VAD()
    predict = v._new_predictor()
    assert 0.0 <= predict(np.zeros(512, dtype=np.float32)) <= 1.0
    # read-only and float64 input is accepted (copied), wrong sizes are refused
    ro = np.zeros(512, dtype=np.float64)
    ro.flags.writeable = False
    assert 0.0 <= predict(ro) <= 1.0
    with pytest.raises(ValueError):
        predict(np.zeros(480, dtype=np.float32))
    predict.release()


def test_8khz() -> None:
    audio, truth = compose(0.8, "Good morning, how are you?", 0.8, sample_rate=8000)
    v = silero.VAD(sample_rate=8000)
    assert v.window_samples == 256
    found = run(v, to_frames(audio, 8000, 20))
    assert len(found) == 1
    assert abs(found[0][0] - truth[0][0]) <= TOLERANCE
    assert abs(found[0][1] - truth[0][1]) <= TOLERANCE


def test_rejects_unsupported_rate() -> None:
    with pytest.raises(ValueError):
        silero.VAD(sample_rate=44100)


class Ticker:
    """Measures hub lag: how late a greenlet sleeping ``period`` wakes up."""

    def __init__(self, period: float = 0.005) -> None:
        self.period = period
        self.lags_ms: list[float] = []
        self._group = Group()

    def __enter__(self) -> Ticker:
        self._group.spawn(self._run)
        return self

    def __exit__(self, *exc: object) -> None:
        self._group.kill(block=True, timeout=2)

    def _run(self) -> None:
        while True:
            start = time.perf_counter()
            gevent.sleep(self.period)
            self.lags_ms.append((time.perf_counter() - start - self.period) * 1000.0)

    def stats(self) -> tuple[float, float, float]:
        lags = np.array(self.lags_ms)
        return float(np.percentile(lags, 50)), float(np.percentile(lags, 99)), float(lags.max())


def realtime_stream(v: silero.VAD, frames: list[Any], frame_s: float) -> int:
    """Push ``frames`` at real-time pace while another greenlet reads the events."""
    stream = v.stream()
    group = Group()

    def consume() -> int:
        return sum(1 for ev in stream if ev.type is vad.VADEventType.END_OF_SPEECH)

    reader = group.spawn(consume)
    start = time.perf_counter()
    try:
        for n, frame in enumerate(frames):
            stream.push_frame(frame)
            # pacing a live source: each frame is pushed when it would have been captured
            delay = start + (n + 1) * frame_s - time.perf_counter()
            if delay > 0:
                gevent.sleep(delay)
        stream.end_input()
        return int(reader.get(timeout=20))
    finally:
        group.kill(block=True, timeout=2)
        stream.close()


@pytest.mark.slow
def test_twenty_realtime_streams_keep_the_hub_responsive(
    two_utterances: tuple[np.ndarray, list[tuple[float, float]]],
) -> None:
    audio, _ = two_utterances
    frames = to_frames(audio[: int(4.2 * 16000)], 16000, 20)  # both utterances
    v = silero.VAD()
    # the first use of twenty models loads them (~0.1 s of CPU each); measure the steady
    # state, as a worker that prewarmed would see it
    to_thread(pool_for(16000).prewarm, 20)

    # The hub-lag goal (p99 < 10 ms) is measured in bench/plugins.py; here: twenty real-time
    # streams all finish with both utterances found while the hub keeps ticking.
    with Ticker() as ticker:
        group = Group()
        results = [group.spawn(realtime_stream, v, frames, 0.02) for _ in range(20)]
        group.join(timeout=60, raise_error=True)
    assert [r.value for r in results] == [2] * 20
    p50, p99, worst = ticker.stats()
    print(f"\nhub lag, 20 silero streams: p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {worst:.1f} ms")


def test_flush_ends_the_speech_in_progress(
    two_utterances: tuple[np.ndarray, list[tuple[float, float]]],
) -> None:
    audio, truth = two_utterances
    (start1, end1), (start2, end2) = truth
    cut = round(end1 * 16000)  # the audio stops right after the first sentence's words
    v = silero.VAD()
    stream = v.stream()
    for frame in to_frames(audio[:cut]):
        stream.push_frame(frame)
    stream.flush()
    # the input is still open and silence never came: only the flush can end this speech
    before: list[vad.VADEvent] = [stream.recv(timeout=20)]
    while before[-1].type is not vad.VADEventType.END_OF_SPEECH:
        before.append(stream.recv(timeout=20))
    for frame in to_frames(audio[cut:]):
        stream.push_frame(frame)
    stream.end_input()
    # the second sentence, found on the same clock (the flush does not restart it)
    assert segments(stream) == [
        (pytest.approx(start2, abs=TOLERANCE), pytest.approx(end2, abs=TOLERANCE))
    ]
    starts = [e for e in before if e.type is vad.VADEventType.START_OF_SPEECH]
    assert len(starts) == 1
    assert abs(starts[0].timestamp - starts[0].speech_duration - start1) <= TOLERANCE
    end = before[-1]
    assert abs(end.timestamp - end.silence_duration - end1) <= TOLERANCE
    (frame,) = end.frames  # the speech heard so far, to recognize at once
    assert frame.samples_per_channel / frame.sample_rate >= end1 - start1
