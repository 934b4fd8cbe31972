"""TTS base class, ChunkedStream, SynthesizeStream and StreamAdapter through FakeTTS."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import gevent
import numpy as np
import pytest
from gevent.event import Event

from syncagents import tokenize, tts
from syncagents.channel import ChanClosed
from syncagents.testing.fakes import FakeTTS, sine_frames


def total_duration(frames: list[Any]) -> float:
    return sum(f.samples_per_channel / f.sample_rate for f in frames)


def test_synthesize_frames_duration_and_metrics() -> None:
    fake = FakeTTS(ttfb=0.05)
    metrics: list[tts.TTSMetrics] = []
    fake.on("metrics_collected", metrics.append)
    text = "Hello there, this is a test."

    with gevent.Timeout(10):
        items = list(fake.synthesize(text))

    assert items and all(i.frame.sample_rate == 24000 and i.frame.num_channels == 1 for i in items)
    assert all(i.frame.samples_per_channel == 480 for i in items[:-1])  # 20 ms frames
    assert total_duration([i.frame for i in items]) == pytest.approx(len(text) * 0.06, abs=1e-3)
    assert items[0].delta_text == text and all(i.delta_text == "" for i in items[1:])
    assert len({i.request_id for i in items}) == 1 and items[0].request_id
    samples = np.concatenate([np.frombuffer(i.frame.data, dtype=np.int16) for i in items])
    assert np.abs(samples).max() > 5000  # real audio, not silence

    (m,) = metrics
    assert m.request_id == items[0].request_id and not m.streamed and not m.cancelled
    assert m.ttfb >= 0.04 and m.duration >= m.ttfb
    assert m.characters_count == len(text)
    assert m.audio_duration == pytest.approx(len(text) * 0.06, abs=1e-3)


def test_synthesize_collect_and_timeout() -> None:
    fake = FakeTTS()
    frames = fake.synthesize("Short one.").collect(timeout=10)
    assert total_duration(frames) == pytest.approx(fake.audio_duration("Short one."), abs=1e-3)
    slow = FakeTTS(ttfb=5).synthesize("never in time")
    with pytest.raises(TimeoutError):
        slow.collect(timeout=0.05)
    slow.close()


class _OddRateTTS(tts.TTS):
    """Declares 16 kHz mono but its engine produces 22.05 kHz stereo."""

    def __init__(self) -> None:
        super().__init__(
            sample_rate=16000, num_channels=1, capabilities=tts.TTSCapabilities(streaming=False)
        )

    def _synthesize(self, text: str) -> Iterator[Any]:
        yield from sine_frames(1.0, sample_rate=22050, num_channels=2, frame_ms=20)


def test_frames_come_at_the_declared_rate() -> None:
    items = list(_OddRateTTS().synthesize("x"))
    assert all(i.frame.sample_rate == 16000 and i.frame.num_channels == 1 for i in items)
    assert total_duration([i.frame for i in items]) == pytest.approx(1.0, abs=0.02)
    assert items[0].delta_text == "x"


def test_synthesize_close_stops_the_plugin() -> None:
    fake = FakeTTS(frame_delay=0.05)
    metrics: list[tts.TTSMetrics] = []
    fake.on("metrics_collected", metrics.append)
    audio = fake.synthesize("A long sentence that would take a while to produce." * 3)
    first = audio.recv(timeout=10)
    assert first.frame.samples_per_channel == 480
    audio.close()
    assert list(audio) == []
    with pytest.raises(ChanClosed):
        audio.recv(timeout=1)
    assert len(metrics) == 1 and metrics[0].cancelled


def test_batch_tts_does_not_stream() -> None:
    with pytest.raises(NotImplementedError, match="StreamAdapter"):
        FakeTTS().stream()


SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "Then it runs far away into the forest.",
    "Nobody saw it ever again after that day.",
]


def test_stream_adapter_first_audio_before_end_input() -> None:
    fake = FakeTTS()
    adapter = tts.StreamAdapter(
        tts=fake, sentence_tokenizer=tokenize.basic.SentenceTokenizer(min_sentence_len=20)
    )
    assert adapter.capabilities.streaming and adapter.sample_rate == 24000
    stream = adapter.stream()
    got_audio = Event()
    items: list[tts.SynthesizedAudio] = []

    def consume() -> None:
        for item in stream:
            items.append(item)
            got_audio.set()

    consumer = gevent.spawn(consume)
    words = " ".join(SENTENCES).split(" ")
    for i, word in enumerate(words):
        stream.push_text(word if i == 0 else " " + word)
        if i == 10:  # well into the second sentence: the first one is complete
            # text is still arriving: the first sentence must already be spoken
            assert got_audio.wait(10), "no audio before end_input"
    stream.end_input()
    consumer.get(timeout=10)

    assert fake.synthesized == SENTENCES
    assert [i.delta_text for i in items if i.delta_text] == SENTENCES
    expected = sum(fake.audio_duration(s) for s in SENTENCES)
    assert total_duration([i.frame for i in items]) == pytest.approx(expected, abs=1e-3)
    assert len({i.segment_id for i in items}) == 1 and items[0].segment_id


def test_stream_adapter_flush_segments_and_metrics() -> None:
    adapter = tts.StreamAdapter(tts=FakeTTS(ttfb=0.01))
    metrics: list[tts.TTSMetrics] = []
    adapter.on("metrics_collected", metrics.append)
    with adapter.stream() as stream:
        stream.push_text(SENTENCES[0])
        stream.flush()
        stream.flush()  # an empty segment: no audio, no metrics
        stream.push_text(SENTENCES[1] + " ")
        stream.push_text(SENTENCES[2])
        stream.end_input()
        with gevent.Timeout(10):
            items = list(stream)

    segments = list(dict.fromkeys(i.segment_id for i in items))
    assert len(segments) == 2
    texts = {seg: "".join(i.delta_text for i in items if i.segment_id == seg) for seg in segments}
    assert texts[segments[0]] == SENTENCES[0]
    assert texts[segments[1]] == SENTENCES[1] + SENTENCES[2]
    assert [m.segment_id for m in metrics] == segments
    assert all(m.streamed and m.ttfb >= 0.005 for m in metrics)
    assert metrics[0].characters_count == len(SENTENCES[0])
    assert metrics[1].characters_count == len(SENTENCES[1]) + 1 + len(SENTENCES[2])


def test_stream_adapter_close_while_synthesizing() -> None:
    fake = FakeTTS(frame_delay=0.05)
    stream = tts.StreamAdapter(tts=fake).stream()
    stream.push_text(SENTENCES[0] + " " + SENTENCES[1])
    stream.flush()
    assert stream.recv(timeout=10).delta_text == SENTENCES[0]
    consumer = gevent.spawn(list, stream)
    gevent.idle()
    stream.close()  # from another greenlet than the consumer
    consumer.get(timeout=5)
    with pytest.raises(RuntimeError):
        stream.push_text("more")
    assert fake.synthesized == [SENTENCES[0]]  # the second sentence was never started


class _BrokenTTS(FakeTTS):
    def _synthesize(self, text: str) -> Iterator[Any]:
        yield from super()._synthesize(text)
        raise OSError("engine crashed")


def test_plugin_error_reaches_the_consumer() -> None:
    with pytest.raises(OSError, match="engine crashed"):
        list(_BrokenTTS().synthesize("hello"))
    stream = tts.StreamAdapter(tts=_BrokenTTS()).stream()
    stream.push_text(SENTENCES[0])
    stream.end_input()
    with gevent.Timeout(10), pytest.raises(OSError, match="engine crashed"):
        list(stream)


def test_flush_synthesizes_the_segment_before_end_input() -> None:
    fake = FakeTTS()
    stream = tts.StreamAdapter(tts=fake).stream()
    stream.push_text("Half a sentence with no end")  # the tokenizer waits for more
    stream.flush()
    # the input is still open: only the flush can end this segment
    first = stream.recv(timeout=10)
    assert first.delta_text == "Half a sentence with no end"
    stream.push_text(SENTENCES[0])
    stream.end_input()
    with gevent.Timeout(10):
        rest = list(stream)
    assert fake.synthesized == ["Half a sentence with no end", SENTENCES[0]]
    (second,) = [i for i in rest if i.delta_text == SENTENCES[0]]
    assert second.segment_id != first.segment_id


def test_input_after_end_input_or_close_raises() -> None:
    metrics: list[tts.TTSMetrics] = []
    adapter = tts.StreamAdapter(tts=FakeTTS())
    adapter.on("metrics_collected", metrics.append)
    stream = adapter.stream()
    stream.end_input()
    stream.end_input()  # again: nothing happens
    for text in ["more", ""]:
        with pytest.raises(RuntimeError, match=r"SynthesizeStream\.push_text\(\) after end_input"):
            stream.push_text(text)
    with pytest.raises(RuntimeError, match=r"SynthesizeStream\.flush\(\) after end_input\(\)"):
        stream.flush()
    with gevent.Timeout(10):
        assert list(stream) == []  # nothing pushed: iteration simply ends, no segment
    assert metrics == []
    stream.close()
    with pytest.raises(RuntimeError, match=r"SynthesizeStream\.push_text\(\) after close\(\)"):
        stream.push_text("more")


class _OffRateTTS(FakeTTS):
    """Declares 24 kHz mono, yields 16 kHz stereo; counts its own ``synthesize()`` calls."""

    def __init__(self) -> None:
        super().__init__()
        self.synthesize_calls = 0

    def synthesize(self, text: str) -> tts.ChunkedStream:
        self.synthesize_calls += 1
        return super().synthesize(text)

    def _synthesize(self, text: str) -> Iterator[Any]:
        self.synthesized.append(text)
        yield from sine_frames(self.audio_duration(text), sample_rate=16000, num_channels=2)


def test_stream_adapter_conforms_the_wrapped_audio_once() -> None:
    fake = _OffRateTTS()
    stream = tts.StreamAdapter(tts=fake).stream()
    stream.push_text(SENTENCES[0] + " " + SENTENCES[1])
    stream.end_input()
    with gevent.Timeout(10):
        items = list(stream)

    # the adapter's stream runs the plugin's generator and converts its audio itself: the
    # wrapped TTS's synthesize() (a greenlet, a queue and a conversion of its own) is not used
    assert fake.synthesize_calls == 0
    assert fake.synthesized == SENTENCES[:2]
    assert all(i.frame.sample_rate == 24000 and i.frame.num_channels == 1 for i in items)
    expected = sum(fake.audio_duration(s) for s in SENTENCES[:2])
    assert total_duration([i.frame for i in items]) == pytest.approx(expected, abs=0.02)
    assert [i.delta_text for i in items if i.delta_text] == SENTENCES[:2]
