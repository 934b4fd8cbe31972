"""VAD base class through FakeVAD, driven by real audio: tone bursts separated by silence."""

from __future__ import annotations

import dataclasses
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


def recv_until(stream: vad.VADStream, kind: vad.VADEventType) -> list[vad.VADEvent]:
    """Events up to and including the first of ``kind``, each waited for with a timeout."""
    got = [stream.recv(timeout=10)]
    while got[-1].type is not kind:
        got.append(stream.recv(timeout=10))
    return got


def test_flush_inside_speech_ends_it_and_the_next_audio_starts_afresh() -> None:
    stream = FakeVAD().stream()
    for frame in sine_frames(0.3, amplitude=0.0) + sine_frames(0.5):
        stream.push_frame(frame)
    stream.flush()
    # the input is still open: only the flush can end this speech
    before = recv_until(stream, vad.VADEventType.END_OF_SPEECH)
    # the tone goes on after the flush: a new speech, detected from scratch
    for frame in sine_frames(0.5) + sine_frames(0.5, amplitude=0.0):
        stream.push_frame(frame)
    stream.end_input()
    with gevent.Timeout(10):
        after = list(stream)

    def kinds(events: list[vad.VADEvent]) -> list[vad.VADEventType]:
        return [e.type for e in events if e.type is not vad.VADEventType.INFERENCE_DONE]

    start_t, end_t = vad.VADEventType.START_OF_SPEECH, vad.VADEventType.END_OF_SPEECH
    assert kinds(before) == [start_t, end_t]
    assert kinds(after) == [start_t, end_t]
    (first,), (second,) = speech_segments(before), speech_segments(after)
    assert abs(first[0] - 0.3) < 0.1 and abs(first[1] - 0.8) < 0.1, first
    assert abs(second[0] - 0.8) < 0.1 and abs(second[1] - 1.3) < 0.1, second
    (frame,) = before[-1].frames  # the segment so far: prefix padding and the tone
    assert np.abs(np.frombuffer(frame.data, dtype=np.int16)).max() > 5000


def test_flush_keeps_the_clock_on_the_audio_pushed() -> None:
    stream = FakeVAD().stream()
    for frame in sine_frames(0.1, amplitude=0.0):  # 1600 samples: 3 windows and 64 samples
        stream.push_frame(frame)
    stream.flush()  # the partial window is analysed, zero-padded
    for frame in sine_frames(0.1, amplitude=0.0):
        stream.push_frame(frame)
    stream.end_input()
    with gevent.Timeout(10):
        events = list(stream)
    assert all(e.type is vad.VADEventType.INFERENCE_DONE for e in events)
    # after the flush, windows end at 1600 + k * 512: the padding is not counted
    assert [e.samples_index for e in events] == [512, 1024, 1536, 2048, 2112, 2624, 3136, 3648]


class _ResettableVAD(FakeVAD):
    """FakeVAD whose predictor logs its calls and resets."""

    def __init__(self) -> None:
        super().__init__()
        self.log: list[str] = []

    def _new_predictor(self) -> Any:
        predict = super()._new_predictor()
        log = self.log

        class Predictor:
            def __call__(self, window: np.ndarray) -> float:
                log.append("window")
                return predict(window)

            def reset(self) -> None:
                log.append("reset")

        return Predictor()


def test_flush_resets_the_predictor_state() -> None:
    detector = _ResettableVAD()
    stream = detector.stream()
    for frame in sine_frames(0.064):  # two windows
        stream.push_frame(frame)
    stream.flush()
    for frame in sine_frames(0.064):
        stream.push_frame(frame)
    stream.end_input()
    with gevent.Timeout(10):
        list(stream)
    assert detector.log[:5] == ["window", "window", "reset", "window", "window"]


def test_input_after_end_input_or_close_raises() -> None:
    stream = FakeVAD().stream()
    stream.end_input()
    stream.end_input()  # again: nothing happens
    frame = sine_frames(0.01)[0]
    with pytest.raises(RuntimeError, match=r"VADStream\.push_frame\(\) after end_input\(\)"):
        stream.push_frame(frame)
    with pytest.raises(RuntimeError, match=r"VADStream\.flush\(\) after end_input\(\)"):
        stream.flush()
    with gevent.Timeout(10):
        assert list(stream) == []  # nothing pushed: iteration simply ends
    stream.close()
    with pytest.raises(RuntimeError, match=r"VADStream\.push_frame\(\) after close\(\)"):
        stream.push_frame(frame)


def test_window_frames_are_the_audio_built_when_read() -> None:
    audio = bursts_audio()
    events = run_stream(FakeVAD(), audio)
    windows = [e for e in events if e.type is vad.VADEventType.INFERENCE_DONE]
    assert all(isinstance(e, vad.VADEvent) for e in windows)
    # read in any order, each window's frame is its 512 samples of the input, at the VAD rate
    pushed = np.concatenate([np.frombuffer(f.data, dtype=np.int16) for f in audio])
    for i in (5, 0, len(windows) - 2):
        (frame,) = windows[i].frames
        assert frame.sample_rate == 16000 and frame.num_channels == 1
        got = np.frombuffer(frame.data, dtype=np.int16)
        assert np.array_equal(got, pushed[512 * i : 512 * (i + 1)])
        assert windows[i].frames[0] is frame  # built once
    # the event stays an ordinary dataclass to its readers
    copy = dataclasses.replace(windows[1], probability=0.25)
    assert copy.frames == windows[1].frames and copy.probability == 0.25
