"""VAD base class through FakeVAD, driven by real audio: tone bursts separated by silence."""

from __future__ import annotations

from typing import Any

import gevent
import numpy as np
import pytest
from gevent.event import Event

from syncagents import vad
from syncagents.channel import ChanClosed
from syncagents.testing.fakes import FakeVAD, sine_frames, tone_bursts

# (start, end) of the tone bursts, seconds
BURSTS = [(0.5, 1.1), (1.9, 2.3)]
TOTAL = 3.2


def bursts_audio(sample_rate: int = 16000, num_channels: int = 1, frame_ms: int = 10) -> list[Any]:
    return tone_bursts(
        BURSTS, TOTAL, sample_rate=sample_rate, num_channels=num_channels, frame_ms=frame_ms
    )


def run_stream(detector: vad.VAD, frames: list[Any]) -> list[vad.VADEvent]:
    """Push from one greenlet, iterate in this one; bounded."""
    stream = detector.stream()

    def push() -> None:
        for frame in frames:
            stream.push_frame(frame)
            gevent.idle()  # let the worker run between frames, as with live audio
        stream.end_input()

    pusher = gevent.spawn(push)
    with gevent.Timeout(20):
        events = list(stream)
    pusher.get(timeout=5)
    return events


def speech_segments(events: list[vad.VADEvent]) -> list[tuple[float, float]]:
    """(start, end) of each speech segment, from the events' timing fields."""
    start_t, end_t = vad.VADEventType.START_OF_SPEECH, vad.VADEventType.END_OF_SPEECH
    starts = [e.timestamp - e.speech_duration for e in events if e.type is start_t]
    ends = [e.timestamp - e.silence_duration for e in events if e.type is end_t]
    return list(zip(starts, ends))


def assert_finds_bursts(events: list[vad.VADEvent], detector: vad.VAD) -> None:
    kinds = [e.type for e in events if e.type is not vad.VADEventType.INFERENCE_DONE]
    assert kinds == [vad.VADEventType.START_OF_SPEECH, vad.VADEventType.END_OF_SPEECH] * 2
    segments = speech_segments(events)
    for (start, end), (true_start, true_end) in zip(segments, BURSTS):
        assert abs(start - true_start) < 0.1, segments
        assert abs(end - true_end) < 0.1, segments

    inferences = [e for e in events if e.type is vad.VADEventType.INFERENCE_DONE]
    assert len(inferences) == int(np.ceil(TOTAL * 16000 / 512))
    assert all(len(e.frames) == 1 and e.frames[0].samples_per_channel == 512 for e in inferences)
    assert [e.samples_index for e in inferences] == [512 * (i + 1) for i in range(len(inferences))]

    ends = [e for e in events if e.type is vad.VADEventType.END_OF_SPEECH]
    for end_ev, (true_start, true_end) in zip(ends, BURSTS):
        (frame,) = end_ev.frames
        assert frame.sample_rate == detector.sample_rate and frame.num_channels == 1
        # the segment holds prefix padding + speech + the silence that ended it
        expected = detector.prefix_padding_duration + (true_end - true_start)
        expected += detector.min_silence_duration
        assert abs(frame.samples_per_channel / frame.sample_rate - expected) < 0.15
        samples = np.frombuffer(frame.data, dtype=np.int16)
        assert np.abs(samples).max() > 5000  # it is the tone, not silence


def test_finds_bursts_16k_mono() -> None:
    detector = FakeVAD()
    assert_finds_bursts(run_stream(detector, bursts_audio()), detector)


def test_resamples_48k_stereo() -> None:
    detector = FakeVAD()
    assert_finds_bursts(run_stream(detector, bursts_audio(48000, 2)), detector)


def test_inference_in_thread_batches_windows(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    real = vad.to_thread

    def counting(fn: Any, predictor: Any, windows: np.ndarray) -> Any:
        calls.append(len(windows))
        return real(fn, predictor, windows)

    monkeypatch.setattr(vad, "to_thread", counting)
    detector = FakeVAD(latency=0.001)
    stream = detector.stream()
    # all audio queued before the worker runs once: few batched calls, not one per window
    for frame in bursts_audio(frame_ms=20):
        stream.push_frame(frame)
    stream.end_input()
    with gevent.Timeout(20):
        events = list(stream)
    assert_finds_bursts(events, detector)
    assert sum(calls) == int(np.ceil(TOTAL * 16000 / 512))
    assert len(calls) <= 3


def test_end_input_inside_speech_ends_the_segment() -> None:
    frames = sine_frames(0.3, amplitude=0.0) + sine_frames(0.5, amplitude=0.3)
    events = run_stream(FakeVAD(), frames)
    kinds = [e.type for e in events if e.type is not vad.VADEventType.INFERENCE_DONE]
    assert kinds == [vad.VADEventType.START_OF_SPEECH, vad.VADEventType.END_OF_SPEECH]
    ((start, end),) = speech_segments(events)
    assert abs(start - 0.3) < 0.1 and abs(end - 0.8) < 0.1


def test_close_ends_iteration_blocked_in_another_greenlet() -> None:
    stream = FakeVAD().stream()
    started = Event()
    got: list[vad.VADEvent] = []

    def consume() -> None:
        for ev in stream:
            got.append(ev)
            started.set()

    consumer = gevent.spawn(consume)
    for frame in sine_frames(0.2, amplitude=0.3):
        stream.push_frame(frame)
    assert started.wait(5)
    stream.close()  # no end_input: close alone must end the loop
    consumer.get(timeout=5)
    assert got
    with pytest.raises(ChanClosed):
        stream.recv(timeout=1)
    with pytest.raises(RuntimeError):
        stream.push_frame(sine_frames(0.01)[0])


def test_recv_timeout_and_end() -> None:
    stream = FakeVAD().stream()
    with pytest.raises(TimeoutError):
        stream.recv(timeout=0.05)  # nothing pushed yet
    stream.end_input()
    with pytest.raises(ChanClosed):
        stream.recv(timeout=5)


class _BrokenVAD(vad.VAD):
    inference_in_thread = True

    def _new_predictor(self) -> Any:
        def predict(window: np.ndarray) -> float:
            raise ValueError("model exploded")

        return predict


def test_predictor_error_reaches_the_consumer() -> None:
    stream = _BrokenVAD().stream()
    for frame in sine_frames(0.1):
        stream.push_frame(frame)
    with gevent.Timeout(10), pytest.raises(ValueError, match="model exploded"):
        list(stream)
    stream.close()
