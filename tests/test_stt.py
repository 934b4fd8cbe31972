"""STT base class, SpeechStream and StreamAdapter through FakeSTT / FakeVAD with real audio."""

from __future__ import annotations

from typing import Any

import gevent
import pytest
from gevent.event import Event

from syncagents import stt
from syncagents.testing.fakes import FakeSTT, FakeVAD, sine_frames, tone_bursts

BURSTS = [(0.5, 1.1), (1.9, 2.3)]
TOTAL = 3.2
S = stt.SpeechEventType


def audio(sample_rate: int = 16000, num_channels: int = 1) -> list[Any]:
    return tone_bursts(BURSTS, TOTAL, sample_rate=sample_rate, num_channels=num_channels)


def stream_all(stream: stt.SpeechStream, frames: list[Any]) -> list[stt.SpeechEvent]:
    """Push from one greenlet, iterate in this one; bounded."""

    def push() -> None:
        for frame in frames:
            stream.push_frame(frame)
            gevent.idle()
        stream.end_input()

    pusher = gevent.spawn(push)
    with gevent.Timeout(20):
        events = list(stream)
    pusher.get(timeout=5)
    return events


def test_recognize_batch_with_metrics() -> None:
    fake = FakeSTT(["hello world"])
    metrics: list[stt.STTMetrics] = []
    fake.on("metrics_collected", metrics.append)
    ev = fake.recognize(sine_frames(0.5), language="fr")
    assert ev.type is S.FINAL_TRANSCRIPT
    assert ev.alternatives[0].text == "hello world" and ev.alternatives[0].language == "fr"
    assert ev.request_id
    assert fake.recognize(sine_frames(0.1)).text == ""  # the script ran out
    assert len(metrics) == 2 and metrics[0].request_id == ev.request_id
    assert metrics[0].audio_duration == pytest.approx(0.5) and not metrics[0].streamed


def test_recognize_timeout() -> None:
    fake = FakeSTT(["slow"], latency=5)
    with pytest.raises(TimeoutError):
        fake.recognize(sine_frames(0.1), timeout=0.05)


def test_batch_stt_does_not_stream() -> None:
    assert not FakeSTT().capabilities.streaming
    with pytest.raises(NotImplementedError, match="StreamAdapter"):
        FakeSTT().stream()


def test_stream_adapter_two_segments_in_order() -> None:
    fake = FakeSTT(["first segment", "second segment"])
    adapter = stt.StreamAdapter(stt=fake, vad=FakeVAD())
    assert adapter.capabilities.streaming and not adapter.capabilities.interim_results
    metrics: list[stt.STTMetrics] = []
    adapter.on("metrics_collected", metrics.append)

    events = stream_all(adapter.stream(), audio(48000, 2))

    assert [e.type for e in events] == [S.START_OF_SPEECH, S.FINAL_TRANSCRIPT, S.END_OF_SPEECH] * 2
    finals = [e for e in events if e.type is S.FINAL_TRANSCRIPT]
    assert [f.text for f in finals] == ["first segment", "second segment"]
    for final, (start, end) in zip(finals, BURSTS):
        assert abs(final.alternatives[0].start_time - start) < 0.1
        assert abs(final.alternatives[0].end_time - end) < 0.1
    assert len(metrics) == 2  # forwarded from the batch STT, one per segment
    # the segments sent to the batch STT hold the bursts (plus padding and trailing silence)
    assert len(fake.recognized) == 2
    assert fake.recognized[0] > 0.6 and fake.recognized[1] > 0.4


def test_segment_stream_recognizes_the_segments_of_a_vad_stream_run_elsewhere() -> None:
    fake = FakeSTT(["first segment", "second segment"])
    vad_ = FakeVAD()
    adapter = stt.StreamAdapter(stt=fake, vad=vad_)
    vad_stream = vad_.stream()
    segments = adapter.segment_stream()

    def relay() -> None:  # what VoiceAssistant does with the one VAD stream it runs
        for ev in vad_stream:
            segments.push_vad_event(ev)
        segments.end_input()

    def feed() -> None:
        for frame in audio():
            vad_stream.push_frame(frame)
            gevent.idle()
        vad_stream.end_input()

    workers = [gevent.spawn(relay), gevent.spawn(feed)]
    with gevent.Timeout(20):
        speech = list(segments)
    for worker in workers:
        worker.get(timeout=5)

    assert [e.type for e in speech] == [S.START_OF_SPEECH, S.FINAL_TRANSCRIPT, S.END_OF_SPEECH] * 2
    finals = [e for e in speech if e.type is S.FINAL_TRANSCRIPT]
    assert [f.text for f in finals] == ["first segment", "second segment"]
    for final, (start, end) in zip(finals, BURSTS):
        assert abs(final.alternatives[0].start_time - start) < 0.1
        assert abs(final.alternatives[0].end_time - end) < 0.1
    assert len(fake.recognized) == 2


def test_stream_adapter_shifts_segment_relative_times() -> None:
    def timed(frames: list[Any], language: str | None) -> stt.SpeechEvent:
        # like a real batch STT: times relative to the audio it was given
        duration = sum(f.samples_per_channel / f.sample_rate for f in frames)
        alt = stt.SpeechData("hi", "en", 1.0, start_time=0.0, end_time=duration)
        return stt.SpeechEvent(S.FINAL_TRANSCRIPT, alternatives=[alt])

    class TimedSTT(FakeSTT):
        def _recognize(self, frames: list[Any], language: str | None) -> stt.SpeechEvent:
            return timed(frames, language)

    vad = FakeVAD()
    adapter = stt.StreamAdapter(stt=TimedSTT(), vad=vad)
    events = stream_all(adapter.stream(), audio())
    finals = [e.alternatives[0] for e in events if e.type is S.FINAL_TRANSCRIPT]
    for alt, (start, end) in zip(finals, BURSTS):
        # the segment audio spans prefix padding .. the silence that ended the speech
        assert abs(alt.start_time - (start - vad.prefix_padding_duration)) < 0.1
        assert abs(alt.end_time - (end + vad.min_silence_duration)) < 0.1


def test_stream_adapter_empty_transcript_has_no_final() -> None:
    adapter = stt.StreamAdapter(stt=FakeSTT(["", "only the second"]), vad=FakeVAD())
    events = stream_all(adapter.stream(), audio())
    assert [e.type for e in events] == [
        S.START_OF_SPEECH, S.END_OF_SPEECH,
        S.START_OF_SPEECH, S.FINAL_TRANSCRIPT, S.END_OF_SPEECH,
    ]


def test_stream_adapter_recognizes_while_audio_arrives_order_preserved() -> None:
    first_called = Event()
    second_done = Event()
    release_first = Event()

    def transcribe(frames: list[Any], language: str | None) -> str:
        if not first_called.is_set():
            first_called.set()
            # the first segment is slow: it finishes only after the second one
            assert release_first.wait(10)
            return "slow first"
        second_done.set()
        return "quick second"

    adapter = stt.StreamAdapter(stt=FakeSTT(transcribe), vad=FakeVAD())
    stream = adapter.stream()
    frames = audio()
    split = int(1.6 * 100)  # 10 ms frames: after the first burst has ended

    events: list[stt.SpeechEvent] = []
    consumer = gevent.spawn(lambda: events.extend(stream))
    for frame in frames[:split]:
        stream.push_frame(frame)
    # recognition of segment 1 starts while the stream is still open, before more audio
    assert first_called.wait(10)
    for frame in frames[split:]:
        stream.push_frame(frame)
    stream.end_input()
    assert second_done.wait(10)  # segment 2 was recognized while segment 1 still ran
    assert not consumer.ready()
    # segment 2's result is ready, but segment 1's (still running) holds it back
    assert all(e.type is S.START_OF_SPEECH for e in events)
    release_first.set()
    consumer.get(timeout=10)
    assert [e.type for e in events] == [S.START_OF_SPEECH, S.FINAL_TRANSCRIPT, S.END_OF_SPEECH] * 2
    finals = [e.text for e in events if e.type is S.FINAL_TRANSCRIPT]
    assert finals == ["slow first", "quick second"]


def test_stream_adapter_close_and_errors() -> None:
    adapter = stt.StreamAdapter(stt=FakeSTT(["x"], latency=30), vad=FakeVAD())
    stream = adapter.stream()
    started = Event()

    def consume() -> list[stt.SpeechEvent]:
        out = []
        for ev in stream:
            out.append(ev)
            started.set()
        return out

    consumer = gevent.spawn(consume)
    for frame in audio():
        stream.push_frame(frame)
    assert started.wait(10)  # START_OF_SPEECH came; the recognition now takes 30 s
    stream.close()
    assert [e.type for e in consumer.get(timeout=5)] == [S.START_OF_SPEECH]

    def broken(frames: list[Any], language: str | None) -> str:
        raise RuntimeError("recognizer down")

    failing = stt.StreamAdapter(stt=FakeSTT(broken), vad=FakeVAD())
    with pytest.raises(RuntimeError, match="recognizer down"):
        stream_all(failing.stream(), audio())


def test_native_streaming_fake_with_interims() -> None:
    fake = FakeSTT(
        ["one two three four five"], streaming=True, interim_results=True, interim_interval=0.1
    )
    assert fake.capabilities.streaming and fake.capabilities.interim_results
    metrics: list[stt.STTMetrics] = []
    fake.on("metrics_collected", metrics.append)
    frames = tone_bursts([(0.3, 1.0)], 1.6)
    events = stream_all(fake.stream(language="en"), frames)

    types = [e.type for e in events]
    assert types[0] is S.START_OF_SPEECH and types[-2:] == [S.FINAL_TRANSCRIPT, S.END_OF_SPEECH]
    interims = [e.text for e in events if e.type is S.INTERIM_TRANSCRIPT]
    assert interims == ["one", "one two", "one two three", "one two three four"]
    assert events[-2].text == "one two three four five"
    assert len(metrics) == 1 and metrics[0].streamed
    # audio pushed up to the final: the speech and the silence that ended it, not the tail
    assert 1.3 <= metrics[0].audio_duration <= 1.6


def recv_until(stream: stt.SpeechStream, kind: stt.SpeechEventType) -> list[stt.SpeechEvent]:
    """Events up to and including the first of ``kind``, each waited for with a timeout."""
    got = [stream.recv(timeout=10)]
    while got[-1].type is not kind:
        got.append(stream.recv(timeout=10))
    return got


@pytest.mark.parametrize("streaming", [False, True], ids=["adapter", "native"])
def test_flush_finalizes_the_speech_heard_so_far(streaming: bool) -> None:
    # one tone from 0.3 s to 0.9 s, flushed at 0.6 s, in the middle of it
    frames = tone_bursts([(0.3, 0.9)], 1.5)
    fake = FakeSTT(["first part", "second part"], streaming=streaming)
    engine = fake if streaming else stt.StreamAdapter(stt=fake, vad=FakeVAD())
    stream = engine.stream()
    for frame in frames[:60]:  # 10 ms frames
        stream.push_frame(frame)
    stream.flush()
    # the input is still open: only the flush can end this speech
    before = recv_until(stream, S.END_OF_SPEECH)
    for frame in frames[60:]:
        stream.push_frame(frame)
    stream.end_input()
    with gevent.Timeout(10):
        after = list(stream)

    kinds = [S.START_OF_SPEECH, S.FINAL_TRANSCRIPT, S.END_OF_SPEECH]
    assert [e.type for e in before] == kinds and [e.type for e in after] == kinds
    assert before[1].text == "first part" and after[1].text == "second part"
    if not streaming:
        # the adapter's times: where the VAD heard speech, on the stream's clock
        first, second = before[1].alternatives[0], after[1].alternatives[0]
        assert abs(first.start_time - 0.3) < 0.1 and abs(first.end_time - 0.6) < 0.1
        assert abs(second.start_time - 0.6) < 0.1 and abs(second.end_time - 0.9) < 0.1


class _FirstFrameSTT(stt.STT):
    """A streaming plugin that reads only the first frame of each segment."""

    def __init__(self) -> None:
        super().__init__(capabilities=stt.STTCapabilities(streaming=True, interim_results=False))

    def _stream(self, frames: Any, language: str | None) -> Any:
        first = next(frames)
        duration = first.samples_per_channel / first.sample_rate
        alt = stt.SpeechData(str(first.samples_per_channel), start_time=0.0, end_time=duration)
        yield stt.SpeechEvent(S.FINAL_TRANSCRIPT, [alt])


def test_each_segment_goes_to_the_plugin_from_its_first_frame() -> None:
    stream = _FirstFrameSTT().stream()
    for frame in sine_frames(0.05, frame_ms=10):  # five frames of 160 samples
        stream.push_frame(frame)
    stream.flush()
    for frame in sine_frames(0.06, frame_ms=20):  # three frames of 320 samples
        stream.push_frame(frame)
    stream.flush()
    stream.flush()  # an empty segment: the plugin is not called
    stream.end_input()
    with gevent.Timeout(10):
        finals = [e.alternatives[0] for e in stream]
    # the frames the plugin left unread are skipped: each segment starts at its own first
    # frame, and its times are moved onto the stream's clock
    assert [a.text for a in finals] == ["160", "320"]
    assert [(a.start_time, a.end_time) for a in finals] == [
        pytest.approx((0.0, 0.01)),
        pytest.approx((0.05, 0.07)),
    ]


def test_input_after_end_input_or_close_raises() -> None:
    stream = FakeSTT(streaming=True).stream()
    stream.end_input()
    stream.end_input()  # again: nothing happens
    frame = sine_frames(0.01)[0]
    with pytest.raises(RuntimeError, match=r"SpeechStream\.push_frame\(\) after end_input\(\)"):
        stream.push_frame(frame)
    with pytest.raises(RuntimeError, match=r"SpeechStream\.flush\(\) after end_input\(\)"):
        stream.flush()
    with gevent.Timeout(10):
        assert list(stream) == []  # nothing pushed: iteration simply ends
    stream.close()
    with pytest.raises(RuntimeError, match=r"SpeechStream\.push_frame\(\) after close\(\)"):
        stream.push_frame(frame)
