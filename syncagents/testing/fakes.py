"""Scripted VAD / STT / TTS plugins for tests, driven by real audio.

Each is a normal plugin (it subclasses the base class and implements only the one method
API.md names), so they double as examples of writing a plugin:

* ``FakeVAD``: an energy detector (RMS of the window above ``threshold`` → speech);
* ``FakeSTT``: returns scripted transcripts, one per recognized segment;
* ``FakeTTS``: a sine tone whose length follows the text length.

Latencies are simulated on purpose (``latency=``, ``ttfb=``...) so tests can exercise slow
plugins; they are waits of the plugin itself, never a way to order a test.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import gevent
import gevent.pool
import numpy as np
from gevent import monkey

from .. import rtc, stt, tts, vad

__all__ = ["FakeSTT", "FakeTTS", "FakeVAD", "sine_frames", "tone_bursts"]

# the predictor may run on a native thread (to_thread), where patched time.sleep must not be used
_real_sleep = monkey.get_original("time", "sleep")


class FakeVAD(vad.VAD):
    """Speech wherever the window's RMS (float, full scale 1.0) is above ``threshold``.

    ``latency``: seconds each window's inference takes; with a latency the predictor runs
    through ``to_thread`` like a real model, without it inline.
    """

    def __init__(
        self,
        *,
        threshold: float = 0.02,
        latency: float = 0.0,
        sample_rate: int = 16000,
        window_samples: int = 512,
        min_speech_duration: float = 0.05,
        min_silence_duration: float = 0.3,
        activation_threshold: float = 0.5,
        prefix_padding_duration: float = 0.1,
    ) -> None:
        super().__init__(
            sample_rate=sample_rate,
            window_samples=window_samples,
            min_speech_duration=min_speech_duration,
            min_silence_duration=min_silence_duration,
            activation_threshold=activation_threshold,
            prefix_padding_duration=prefix_padding_duration,
        )
        self.threshold = threshold
        self.latency = latency
        self.inference_in_thread = latency > 0
        self.windows_seen = 0

    def _new_predictor(self) -> Callable[[np.ndarray], float]:
        threshold, latency = self.threshold, self.latency

        def predict(window: np.ndarray) -> float:
            if latency:
                _real_sleep(latency)
            self.windows_seen += 1  # int += under the GIL: fine from one stream's thread
            # The energy as one dot product, not square/mean: numpy ufuncs and reductions on
            # more than 500 elements release the GIL, and when another thread (the bridge
            # loop, livekit's callbacks) takes it the hub waits up to the switch interval to
            # get it back — ~100x the work itself, per window, many assistants per process.
            # A BLAS dot on a 1-D vector keeps the GIL.
            samples = np.asarray(window, dtype=np.float32).ravel()
            energy = float(samples @ samples)
            return 1.0 if energy > threshold * threshold * max(1, samples.size) else 0.0

        return predict


class FakeSTT(stt.STT):
    """Scripted recognizer: each recognized segment gets the next text of ``transcripts``
    ("" once they run out), or ``transcripts(frames, language)`` when it is a callable.

    ``latency``: seconds each recognition takes. Batch by default (stream it with
    ``stt.StreamAdapter``); ``streaming=True`` makes it a native streaming STT that segments
    with its own ``FakeVAD`` and, with ``interim_results=True``, reveals the scripted text word
    by word in INTERIM_TRANSCRIPT events (one more word per ``interim_interval`` s of speech)
    before the FINAL_TRANSCRIPT.
    ``recognized`` lists the audio duration of every segment it transcribed.
    """

    def __init__(
        self,
        transcripts: Sequence[str] | Callable[[list[Any], str | None], str] = (),
        *,
        latency: float = 0.0,
        language: str = "en",
        streaming: bool = False,
        interim_results: bool = False,
        interim_interval: float = 0.2,
        vad: vad.VAD | None = None,
    ) -> None:
        super().__init__(
            capabilities=stt.STTCapabilities(
                streaming=streaming, interim_results=streaming and interim_results
            )
        )
        self._script = transcripts if callable(transcripts) else list(transcripts)
        self._next = 0
        self.latency = latency
        self.language = language
        self.interim_interval = interim_interval
        self._vad = vad or FakeVAD()
        self.recognized: list[float] = []

    def _next_text(self, frames: list[Any], language: str | None) -> str:
        if callable(self._script):
            return self._script(frames, language)
        if self._next >= len(self._script):
            return ""
        self._next += 1
        return self._script[self._next - 1]

    def _recognize(self, frames: list[Any], language: str | None) -> stt.SpeechEvent:
        if self.latency:
            gevent.sleep(self.latency)
        self.recognized.append(sum(f.samples_per_channel / f.sample_rate for f in frames))
        text = self._next_text(frames, language)
        return stt.SpeechEvent(
            stt.SpeechEventType.FINAL_TRANSCRIPT,
            alternatives=[stt.SpeechData(text, language or self.language, 1.0)],
        )

    def _stream(self, frames: Iterator[Any], language: str | None) -> Iterator[stt.SpeechEvent]:
        vad_stream = self._vad.stream()
        group = gevent.pool.Group()

        def feed() -> None:
            for frame in frames:
                vad_stream.push_frame(frame)
            vad_stream.end_input()

        group.spawn(feed)
        lang = language or self.language
        words: list[str] = []
        shown = 0
        try:
            for ev in vad_stream:
                if ev.type is vad.VADEventType.START_OF_SPEECH:
                    words = [] if callable(self._script) else self._next_text([], lang).split()
                    shown = 0
                    yield stt.SpeechEvent(stt.SpeechEventType.START_OF_SPEECH)
                elif ev.type is vad.VADEventType.INFERENCE_DONE and ev.speaking:
                    due = min(len(words) - 1, int(ev.speech_duration / self.interim_interval))
                    if self.capabilities.interim_results and due > shown:
                        shown = due
                        interim = stt.SpeechEventType.INTERIM_TRANSCRIPT
                        yield self._event(interim, words[:due], lang)
                elif ev.type is vad.VADEventType.END_OF_SPEECH:
                    if self.latency:
                        gevent.sleep(self.latency)
                    self.recognized.append(ev.speech_duration)
                    if callable(self._script):
                        words = self._script(ev.frames, lang).split()
                    if words:
                        yield self._event(stt.SpeechEventType.FINAL_TRANSCRIPT, words, lang)
                    yield stt.SpeechEvent(stt.SpeechEventType.END_OF_SPEECH)
        finally:
            group.kill(block=True, timeout=5)
            vad_stream.close()

    @staticmethod
    def _event(type_: stt.SpeechEventType, words: list[str], lang: str) -> stt.SpeechEvent:
        return stt.SpeechEvent(type_, alternatives=[stt.SpeechData(" ".join(words), lang, 1.0)])


class FakeTTS(tts.TTS):
    """A tone per request: ``seconds_per_char`` of audio per character of text (whitespace
    around the text not counted), in ``frame_ms`` frames at ``sample_rate`` (24 kHz default).

    ``ttfb``: seconds before the first frame; ``frame_delay``: seconds between frames.
    Batch only (``capabilities.streaming=False``): streams go through ``tts.StreamAdapter``.
    ``synthesized`` lists every text it was asked to speak.
    """

    def __init__(
        self,
        *,
        sample_rate: int = 24000,
        num_channels: int = 1,
        seconds_per_char: float = 0.06,
        frame_ms: int = 20,
        frequency: float = 330.0,
        amplitude: float = 0.3,
        ttfb: float = 0.0,
        frame_delay: float = 0.0,
    ) -> None:
        super().__init__(
            sample_rate=sample_rate,
            num_channels=num_channels,
            capabilities=tts.TTSCapabilities(streaming=False),
        )
        self.seconds_per_char = seconds_per_char
        self.frame_ms = frame_ms
        self.frequency = frequency
        self.amplitude = amplitude
        self.ttfb = ttfb
        self.frame_delay = frame_delay
        self.synthesized: list[str] = []

    def audio_duration(self, text: str) -> float:
        """Seconds of audio ``text`` produces (rounded to whole samples)."""
        samples = round(len(text.strip()) * self.seconds_per_char * self.sample_rate)
        return samples / self.sample_rate

    def _synthesize(self, text: str) -> Iterator[Any]:
        self.synthesized.append(text)
        if self.ttfb:
            gevent.sleep(self.ttfb)
        frames = _iter_sine_frames(
            self.audio_duration(text),
            sample_rate=self.sample_rate,
            num_channels=self.num_channels,
            frequency=self.frequency,
            amplitude=self.amplitude,
            frame_ms=self.frame_ms,
        )
        for i, frame in enumerate(frames):
            if i and self.frame_delay:
                gevent.sleep(self.frame_delay)
            yield frame


def sine_frames(
    duration: float,
    *,
    sample_rate: int = 16000,
    num_channels: int = 1,
    frequency: float = 440.0,
    amplitude: float = 0.3,
    frame_ms: int = 10,
) -> list[Any]:
    """``rtc.AudioFrame``s of a tone (``amplitude`` 0 gives silence), ``frame_ms`` each."""
    return list(
        _iter_sine_frames(
            duration,
            sample_rate=sample_rate,
            num_channels=num_channels,
            frequency=frequency,
            amplitude=amplitude,
            frame_ms=frame_ms,
        )
    )


def _iter_sine_frames(
    duration: float,
    *,
    sample_rate: int,
    num_channels: int,
    frequency: float,
    amplitude: float,
    frame_ms: int,
) -> Iterator[Any]:
    """The frames of :func:`sine_frames`, each computed when asked for: the first one is
    there at once, whatever the length (FakeTTS is a zero-latency TTS)."""
    total = round(duration * sample_rate)
    per = max(1, sample_rate * frame_ms // 1000)
    for i in range(0, total, per):
        t = np.arange(i, min(i + per, total)) / sample_rate
        chunk = (np.sin(2 * math.pi * frequency * t) * amplitude * 32767).astype(np.int16)
        if num_channels > 1:
            chunk = np.repeat(chunk, num_channels)
        n = len(chunk) // num_channels
        yield rtc.AudioFrame(chunk.tobytes(), sample_rate, num_channels, n)


def tone_bursts(
    bursts: Sequence[tuple[float, float]],
    duration: float,
    *,
    sample_rate: int = 16000,
    num_channels: int = 1,
    frame_ms: int = 10,
    amplitude: float = 0.3,
) -> list[Any]:
    """Frames of ``duration`` s: silence with a tone during each ``(start, end)`` burst
    (seconds, sorted) — speech-like input for VAD and STT tests."""
    total = round(duration * sample_rate)
    t = np.arange(total) / sample_rate
    wave = np.sin(2 * math.pi * 440.0 * t) * amplitude * 32767
    envelope = np.zeros(total)
    for start, end in bursts:
        envelope[round(start * sample_rate) : round(end * sample_rate)] = 1.0
    samples = np.repeat((wave * envelope).astype(np.int16), num_channels)
    per = max(1, sample_rate * frame_ms // 1000)
    return [
        rtc.AudioFrame(
            samples[i * num_channels : (i + per) * num_channels].tobytes(),
            sample_rate,
            num_channels,
            min(per, total - i),
        )
        for i in range(0, total, per)
    ]
