"""Text-to-speech: the ``TTS`` base class, ``ChunkedStream`` and ``SynthesizeStream``.

A plugin implements ``_synthesize(text) -> Iterator[rtc.AudioFrame]`` (a generator); a
streaming plugin also implements ``_stream(text) -> Iterator[rtc.AudioFrame |
SynthesizedAudio]`` for one segment, where ``text`` yields the segment's text chunks and ends
at the caller's ``flush()``/``end_input()`` (the base calls it once per segment, in order).

Frames are passed on as the plugin produced them (no re-chunking: their size is the plugin's
choice), with one guarantee: every frame has the TTS's declared ``sample_rate`` and
``num_channels`` (other rates are resampled, mono is spread to every channel, multi-channel
audio is averaged to mono).

Synthesis runs in a greenlet owned by the returned stream, from the moment ``synthesize()`` /
``stream()`` is called, so audio is ready before the consumer asks for it; ``close()`` stops
it. Metrics (``TTSMetrics``: time to first byte, audio duration, characters) go to the callbacks
registered with ``tts.on("metrics_collected")``: one per ``synthesize`` and one per segment of
a stream.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import gevent
import numpy as np

from .. import rtc
from ..channel import Chan, ChanClosed, ChanStream
from ..events import EventEmitter
from ..utils.audio import Resampler
from ..utils.input_stream import InputStream

__all__ = [
    "TTS",
    "ChunkedStream",
    "SynthesizeStream",
    "SynthesizedAudio",
    "TTSCapabilities",
    "TTSMetrics",
]


@dataclass
class TTSCapabilities:
    """What a TTS can do: ``streaming`` (it takes text as it comes; otherwise wrap it in
    ``tts.StreamAdapter`` with a sentence tokenizer)."""

    streaming: bool


@dataclass
class SynthesizedAudio:
    """One frame of synthesized speech, with the request and segment it belongs to."""

    frame: Any
    """``rtc.AudioFrame`` at the TTS's sample_rate / num_channels."""
    request_id: str = ""
    segment_id: str = ""
    delta_text: str = ""
    """The text this frame starts (set on the first frame of each sentence/request)."""


@dataclass
class TTSMetrics:
    """Metrics of one synthesis (``streamed``: of a stream segment), sent with the TTS's
    ``metrics_collected`` event."""

    label: str
    request_id: str
    segment_id: str
    timestamp: float
    """Wall-clock time (``time.time()``) when the metrics were taken."""
    ttfb: float
    """Seconds from the request (or the segment's first text) to its first audio; -1 if none."""
    duration: float
    """Seconds from the request (or the segment's first text) to its last audio."""
    audio_duration: float
    characters_count: int
    streamed: bool
    cancelled: bool = False
    error: str | None = None


MetricsCallback = Callable[[TTSMetrics], None]


def new_id(prefix: str) -> str:
    """A fresh id: ``prefix`` and 12 random hex digits."""
    return prefix + uuid.uuid4().hex[:12]


class TTS(EventEmitter):
    """Base class of text-to-speech plugins.

    A plugin calls ``super().__init__(sample_rate=, num_channels=, capabilities=)`` and implements
    ``_synthesize(text)``, a generator of ``rtc.AudioFrame``; a streaming one also implements
    ``_stream(text)``. Users call ``synthesize()`` or ``stream()``. ``on("metrics_collected", fn)``:
    ``fn`` gets ``TTSMetrics`` per request and per stream segment.
    """

    def __init__(
        self, *, sample_rate: int, num_channels: int, capabilities: TTSCapabilities
    ) -> None:
        self.sample_rate = sample_rate
        self.num_channels = num_channels
        self.capabilities = capabilities

    @property
    def label(self) -> str:
        """The plugin's name in metrics and logs: ``module.ClassName``."""
        return f"{type(self).__module__}.{type(self).__name__}"

    # -- plugin methods ------------------------------------------------------------------------

    def _synthesize(self, text: str) -> Iterator[Any]:
        raise NotImplementedError

    def _stream(self, text: Iterator[str]) -> Iterator[Any]:
        raise NotImplementedError

    # -- public API ----------------------------------------------------------------------------

    def synthesize(self, text: str) -> ChunkedStream:
        """Synthesize ``text``: a blocking iterator of ``SynthesizedAudio`` (with ``close()``)."""
        return ChunkedStream(self, text)

    def stream(self) -> SynthesizeStream:
        """Streaming synthesis (needs ``capabilities.streaming``; wrap a batch TTS in
        ``tts.StreamAdapter(tts=, sentence_tokenizer=)`` to get one)."""
        if not self.capabilities.streaming:
            raise NotImplementedError(
                f"{self.label} does not stream: wrap it in tts.StreamAdapter(tts=...)"
            )
        return SynthesizeStream(self)

    def close(self) -> None:
        """Release plugin resources (nothing by default)."""

    # -- metrics -------------------------------------------------------------------------------

    def _emit_metrics(self, metrics: TTSMetrics) -> None:
        self.emit("metrics_collected", metrics)


class _Conformer:
    """Brings frames to the declared rate and channel count; tracks timing for metrics."""

    def __init__(self, tts: TTS, request_id: str, segment_id: str, streamed: bool) -> None:
        self._tts = tts
        self._resampler = Resampler(tts.sample_rate)
        self.request_id = request_id
        self.segment_id = segment_id
        self.streamed = streamed
        self.start = time.perf_counter()
        self.first_audio: float | None = None
        self.last_audio: float | None = None
        self.audio_duration = 0.0
        self.characters = 0

    def convert(self, frame: Any) -> list[Any]:
        tts = self._tts
        channels = int(frame.num_channels)
        if channels != tts.num_channels:
            data = np.frombuffer(frame.data, dtype=np.int16).reshape(-1, channels)
            if tts.num_channels == 1:
                data = data.astype(np.int32).mean(axis=1).astype(np.int16)
            elif channels == 1:
                data = np.repeat(data, tts.num_channels, axis=1)
            else:
                raise ValueError(f"cannot map {channels} channels to {tts.num_channels}")
            n = int(frame.samples_per_channel)
            frame = rtc.AudioFrame(data.tobytes(), frame.sample_rate, tts.num_channels, n)
        return self._resampler.push(frame)  # passes frames at the declared rate through

    def flush(self) -> list[Any]:
        return self._resampler.flush()

    def audio(self, frame: Any, delta_text: str) -> SynthesizedAudio:
        now = time.perf_counter()
        if self.first_audio is None:
            self.first_audio = now
        self.last_audio = now
        self.audio_duration += frame.samples_per_channel / frame.sample_rate
        return SynthesizedAudio(
            frame=frame,
            request_id=self.request_id,
            segment_id=self.segment_id,
            delta_text=delta_text,
        )

    def metrics(self, cancelled: bool = False, error: str | None = None) -> TTSMetrics:
        end = self.last_audio if self.last_audio is not None else time.perf_counter()
        return TTSMetrics(
            label=self._tts.label,
            request_id=self.request_id,
            segment_id=self.segment_id,
            timestamp=time.time(),
            ttfb=(self.first_audio - self.start) if self.first_audio is not None else -1.0,
            duration=end - self.start,
            audio_duration=self.audio_duration,
            characters_count=self.characters,
            streamed=self.streamed,
            cancelled=cancelled,
            error=error,
        )


# Audio a synthesis greenlet sends before it lets other greenlets run: the first frame is
# passed on at once, the rest in slices that keep the hub responsive with many assistants.
_YIELD_EVERY_S = 0.1


def _pump(
    out: Chan[SynthesizedAudio], conform: _Conformer, produced: Iterator[Any], first_text: str
) -> None:
    """Send what a plugin generator yields (frames or SynthesizedAudio) to ``out``.

    ``delta_text`` waits for the first frame actually sent (a resampler may hold the first
    frames back). The generator is closed here so its ``finally`` runs in this greenlet.
    """
    pending_text = first_text
    unyielded = -1.0  # seconds of audio sent since this greenlet last let others run
    try:
        for item in produced:
            if isinstance(item, SynthesizedAudio):
                frame, text = item.frame, item.delta_text
            else:
                frame, text = item, ""
            pending_text += text
            for f in conform.convert(frame):
                out.send_nowait(conform.audio(f, pending_text))
                pending_text = ""
                unyielded += f.samples_per_channel / f.sample_rate
                if unyielded < 0 or unyielded >= _YIELD_EVERY_S:
                    # sending never switches greenlets: a plugin that hands over a whole
                    # sentence at once would hold the hub until its last frame, and the
                    # first frame would reach playout only then
                    unyielded = 0.0
                    gevent.sleep(0)
        for f in conform.flush():
            out.send_nowait(conform.audio(f, pending_text))
            pending_text = ""
    finally:
        close = getattr(produced, "close", None)
        if close is not None:
            close()


def _report(tts: TTS, conform: _Conformer, run: Callable[[], None]) -> None:
    """Run ``run`` and emit its metrics whatever happens (error, cancellation)."""
    try:
        run()
    except gevent.GreenletExit:
        tts._emit_metrics(conform.metrics(cancelled=True))
        raise
    except Exception as exc:
        tts._emit_metrics(conform.metrics(error=f"{type(exc).__name__}: {exc}"))
        raise
    tts._emit_metrics(conform.metrics())


class ChunkedStream(ChanStream[SynthesizedAudio]):
    """The audio of one ``synthesize(text)``: iterate ``SynthesizedAudio``; ``close()`` stops.

    The first frame's ``delta_text`` is the whole text. ``segment_id`` equals ``request_id``.
    ``recv(timeout=)`` waits for one item; ``collect(timeout=)`` waits for all of them.
    """

    def __init__(self, tts: TTS, text: str) -> None:
        super().__init__()
        self._tts = tts
        self.text = text
        self.request_id = new_id("TTS_")
        self._spawn_producer(self._run)

    def collect(self, timeout: float | None = None) -> list[Any]:
        """All frames, blocking until synthesis ends (``TimeoutError`` after ``timeout`` s)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        frames = []
        while True:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                frames.append(self.recv(timeout=remaining).frame)
            except ChanClosed:
                return frames

    def _run(self) -> None:
        conform = _Conformer(self._tts, self.request_id, self.request_id, streamed=False)
        conform.characters = len(self.text)
        _report(
            self._tts,
            conform,
            lambda: _pump(self._out, conform, self._tts._synthesize(self.text), self.text),
        )


class SynthesizeStream(InputStream[str, SynthesizedAudio]):
    """Push text (``push_text``, never blocks) from one greenlet, iterate ``SynthesizedAudio``
    in another. ``flush()`` ends the current segment: what was pushed so far is synthesized
    to the end (the plugin's ``_stream`` sees its text end), and the next text starts a new
    segment with a new ``segment_id`` and its own metrics (as in livekit-agents; a flush with
    no text since the last one makes no segment). ``end_input()`` ends the last segment the
    same way and lets iteration end once everything is synthesized; ``close()`` stops at
    once. ``recv(timeout=)`` waits for one item.
    """

    def __init__(self, tts: TTS) -> None:
        super().__init__()
        self._tts = tts
        self.request_id = new_id("TTS_")
        self._spawn_producer(self._run)

    def push_text(self, text: str) -> None:
        """Add text to the current segment; never blocks (empty text is ignored).

        Raises ``RuntimeError`` after ``end_input()`` or ``close()``.
        """
        if text:
            self._push("push_text", text)
        else:
            self._check_input("push_text")

    def _run(self) -> None:
        for text in self._segments():
            self._segment(text)

    def _segment(self, segment: Iterator[str]) -> None:
        conform = _Conformer(self._tts, self.request_id, new_id("SEG_"), streamed=True)

        def text() -> Iterator[str]:
            for chunk in segment:
                conform.characters += len(chunk)
                yield chunk

        def run() -> None:
            _pump(self._out, conform, self._tts._stream(text()), "")

        _report(self._tts, conform, run)
