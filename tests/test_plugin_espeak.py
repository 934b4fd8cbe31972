"""plugins.espeak.TTS: audible output at the stated format, the rate option, the global
espeak state under concurrency, and errors."""

from __future__ import annotations

import gevent
import numpy as np
import pytest
from gevent.pool import Group
from speech import frames_to_samples, speech_edges

from syncagents import Plugin, tts
from syncagents.plugins import espeak

TEXT = "The quick brown fox jumps over the lazy dog."


def synth(engine: espeak.TTS, text: str = TEXT) -> list:
    return engine.synthesize(text).collect(timeout=30)


def test_registered() -> None:
    plugin = next(p for p in Plugin.registered_plugins if p.title == "espeak")
    plugin.download_files()  # loads the library and its data


def test_output_format_and_audible() -> None:
    engine = espeak.TTS()
    assert (engine.sample_rate, engine.num_channels) == (22050, 1)
    assert engine.capabilities.streaming is False
    frames = synth(engine)
    assert len(frames) > 10
    for frame in frames:
        assert frame.sample_rate == 22050 and frame.num_channels == 1
    assert {f.samples_per_channel for f in frames[:-1]} == {441}  # 20 ms
    assert 0 < frames[-1].samples_per_channel <= 441
    samples = frames_to_samples(frames)
    duration = len(samples) / 22050
    assert 1.5 < duration < 6.0, duration  # ten words at 175 words per minute
    rms = float(np.sqrt(np.mean(samples.astype(np.float64) ** 2))) / 32768
    assert rms > 0.02, rms  # clearly audible, not silence
    edges = speech_edges(samples, 22050)
    assert edges is not None and edges[1] - edges[0] > 1.0


def test_rate_changes_the_duration() -> None:
    slow = frames_to_samples(synth(espeak.TTS(rate=100)))
    fast = frames_to_samples(synth(espeak.TTS(rate=300)))
    assert len(slow) > 1.8 * len(fast), (len(slow), len(fast))


def test_other_voice_and_sample_rate() -> None:
    engine = espeak.TTS(voice="fr", sample_rate=16000)
    frames = synth(engine, "Bonjour tout le monde.")
    assert {f.sample_rate for f in frames} == {16000}  # the base class resampled
    assert len(frames_to_samples(frames)) > 0.5 * 16000


def test_concurrent_syntheses_do_not_mix_state() -> None:
    # espeak-ng has one global voice/rate: concurrent requests with different settings must
    # each get what they would get alone. espeak varies its output by a few samples from run
    # to run, so compare durations: 120 vs 300 words per minute differ by far more.
    engines = [espeak.TTS(voice="en-us", rate=120), espeak.TTS(voice="de", rate=300)]
    texts = ["Hello there, how are you today?", "Guten Tag, wie geht es Ihnen?"]
    alone = [frames_to_samples(synth(e, t)) for e, t in zip(engines, texts)]
    group = Group()
    jobs = [group.spawn(synth, engines[i % 2], texts[i % 2]) for i in range(8)]
    group.join(timeout=60, raise_error=True)
    assert len(alone[0]) > 1.5 * len(alone[1])
    for i, job in enumerate(jobs):
        got = len(frames_to_samples(job.value))
        assert abs(got - len(alone[i % 2])) < 0.03 * len(alone[i % 2]), (i, got, len(alone[i % 2]))


def test_stream_adapter_speaks_sentences_in_order() -> None:
    engine = tts.StreamAdapter(tts=espeak.TTS())
    stream = engine.stream()
    for piece in ["Hello there, this is the first sentence. ", "And here ", "is the second one."]:
        stream.push_text(piece)
    stream.end_input()
    with gevent.Timeout(30):
        items = list(stream)
    starts = [item.delta_text for item in items if item.delta_text]
    assert len(starts) == 2 and starts[0].startswith("Hello"), starts
    assert len(frames_to_samples([i.frame for i in items])) > 22050


def test_empty_text_gives_no_audio() -> None:
    assert synth(espeak.TTS(), "   ") == []


def test_bad_options() -> None:
    with pytest.raises(ValueError):
        espeak.TTS(voice="no-such-voice")
    with pytest.raises(ValueError):
        espeak.TTS(rate=20)


def test_stream_adapter_flush_speaks_the_segment_at_once() -> None:
    stream = tts.StreamAdapter(tts=espeak.TTS()).stream()
    try:
        stream.push_text("Hello there, this sentence has no end")  # the tokenizer waits
        stream.flush()
        # the input is still open: only the flush can end this segment
        first = stream.recv(timeout=30)
        assert first.delta_text == "Hello there, this sentence has no end"
        stream.push_text("And this is the next one.")
        stream.end_input()
        with gevent.Timeout(30):
            rest = list(stream)
    finally:
        stream.close()
    (second,) = [i for i in rest if i.delta_text]
    assert second.delta_text == "And this is the next one."
    assert second.segment_id != first.segment_id
    assert {i.segment_id for i in rest} == {first.segment_id, second.segment_id}
