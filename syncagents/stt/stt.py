"""Speech-to-text: the ``STT`` base class, its events and the blocking ``SpeechStream``.

A batch plugin implements ``_recognize(frames, language) -> SpeechEvent``; a streaming one
also implements ``_stream(frames, language) -> Iterator[SpeechEvent]``: a generator reading
``frames`` until the caller's ``flush()`` or ``end_input()`` ends the segment, then saying
what is left (the base calls it once per segment, in order, and shifts the segment's times
onto the stream's clock). The base class adds the timeouts, the stream plumbing (an owned
greenlet drives the generator) and metrics.

Metrics: every ``recognize`` (and every FINAL_TRANSCRIPT of a native stream) produces an
``STTMetrics``, delivered to the callbacks registered with ``stt.on("metrics_collected")``.
"""

from __future__ import annotations

import enum
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import gevent

from ..events import EventEmitter
from ..utils.input_stream import InputStream

__all__ = [
    "STT",
    "STTCapabilities",
    "STTMetrics",
    "SpeechData",
    "SpeechEvent",
    "SpeechEventType",
    "SpeechStream",
]


@dataclass
class STTCapabilities:
    """What an STT can do: ``streaming`` (it recognizes a live stream itself; otherwise
    wrap it in ``stt.StreamAdapter`` with a VAD) and ``interim_results``."""

    streaming: bool
    interim_results: bool


class SpeechEventType(str, enum.Enum):
    """The kind of a ``SpeechEvent``.

    ``START_OF_SPEECH``, ``INTERIM_TRANSCRIPT`` (a guess that may still change),
    ``FINAL_TRANSCRIPT`` (the settled text of a segment), ``END_OF_SPEECH``.
    """

    START_OF_SPEECH = "start_of_speech"
    INTERIM_TRANSCRIPT = "interim_transcript"
    FINAL_TRANSCRIPT = "final_transcript"
    END_OF_SPEECH = "end_of_speech"


@dataclass
class SpeechData:
    """One alternative of a transcript: its text, language, confidence and where it lies
    in the audio."""

    text: str
    language: str = ""
    confidence: float = 0.0
    start_time: float = 0.0
    """Seconds; for streams, from the start of the stream."""
    end_time: float = 0.0


@dataclass
class SpeechEvent:
    """What an STT reports: the kind of event and, for transcripts, the alternatives,
    best first."""

    type: SpeechEventType
    alternatives: list[SpeechData] = field(default_factory=list)
    request_id: str = ""

    @property
    def text(self) -> str:
        """The best alternative's text ("" when there is none)."""
        return self.alternatives[0].text if self.alternatives else ""


@dataclass
class STTMetrics:
    """Metrics of one recognition (``streamed``: of a stream segment), sent with the
    STT's ``metrics_collected`` event."""

    label: str
    request_id: str
    timestamp: float
    """Wall-clock time (``time.time()``) when the metrics were taken."""
    duration: float
    """Seconds spent recognizing (0 for native streams, where it is not measurable)."""
    audio_duration: float
    """Seconds of audio that produced the transcript."""
    streamed: bool
    error: str | None = None


MetricsCallback = Callable[[STTMetrics], None]


def new_request_id() -> str:
    """A fresh request id: ``STT_`` and 12 random hex digits."""
    return "STT_" + uuid.uuid4().hex[:12]


class STT(EventEmitter):
    """Base class of speech-to-text plugins.

    A batch plugin implements ``_recognize(frames, language) -> SpeechEvent``; a streaming one also
    implements ``_stream(frames, language)``, a generator of ``SpeechEvent``. Users call
    ``recognize()`` or ``stream()``. ``on("metrics_collected", fn)``: ``fn`` gets ``STTMetrics`` for
    every recognition.
    """

    def __init__(self, *, capabilities: STTCapabilities) -> None:
        self.capabilities = capabilities

    @property
    def label(self) -> str:
        """The plugin's name in metrics and logs: ``module.ClassName``."""
        return f"{type(self).__module__}.{type(self).__name__}"

    # -- plugin methods ------------------------------------------------------------------------

    def _recognize(self, frames: list[Any], language: str | None) -> SpeechEvent:
        raise NotImplementedError

    def _stream(self, frames: Iterator[Any], language: str | None) -> Iterator[SpeechEvent]:
        """A streaming plugin's recognition of one segment: ``frames`` ends at the caller's
        ``flush()`` or ``end_input()``, after which the plugin finalizes what it heard.
        Times count from the segment's first frame."""
        raise NotImplementedError

    # -- public API ----------------------------------------------------------------------------

    def recognize(
        self, frames: Any | Iterable[Any], language: str | None = None, timeout: float | None = None
    ) -> SpeechEvent:
        """Transcribe ``frames`` (an ``rtc.AudioFrame`` or a list of them).

        Blocks the calling greenlet; ``TimeoutError`` after ``timeout`` seconds (a plugin call
        running in ``to_thread`` finishes in the background, its result discarded).
        """
        frame_list = [frames] if hasattr(frames, "samples_per_channel") else list(frames)
        request_id = new_request_id()
        audio = sum(_duration(f) for f in frame_list)
        start = time.perf_counter()
        error: str | None = None
        try:
            with gevent.Timeout(timeout, TimeoutError(f"recognize timed out after {timeout} s")):
                event = self._recognize(frame_list, language)
        except BaseException as exc:
            error = f"{type(exc).__name__}: {exc}"
            raise
        finally:
            self._emit_metrics(
                STTMetrics(
                    label=self.label,
                    request_id=request_id,
                    timestamp=time.time(),
                    duration=time.perf_counter() - start,
                    audio_duration=audio,
                    streamed=False,
                    error=error,
                )
            )
        if not event.request_id:
            event.request_id = request_id
        return event

    def stream(self, language: str | None = None) -> SpeechStream:
        """A streaming recognition (needs ``capabilities.streaming``; wrap a batch STT in
        ``stt.StreamAdapter(stt=, vad=)`` to get one)."""
        if not self.capabilities.streaming:
            raise NotImplementedError(
                f"{self.label} does not stream: wrap it in stt.StreamAdapter(stt=..., vad=...)"
            )
        return SpeechStream(self, language)

    def close(self) -> None:
        """Release plugin resources (nothing by default)."""

    # -- metrics -------------------------------------------------------------------------------

    def _emit_metrics(self, metrics: STTMetrics) -> None:
        self.emit("metrics_collected", metrics)


class SpeechStream(InputStream[Any, SpeechEvent]):
    """Push audio (``push_frame``) from one greenlet, iterate ``SpeechEvent`` in another.

    An owned greenlet drives the plugin's ``_stream`` generator, once per segment: the
    plugin's ``frames`` end at ``flush()`` (or ``end_input()``), so it finalizes what it has
    heard so far (a speech in progress gets its FINAL_TRANSCRIPT, if it has words, and its
    END_OF_SPEECH), as livekit-agents' ``flush()`` ends a segment; audio pushed after the
    flush goes to the plugin's next ``_stream`` call, its times shifted onto the stream's
    clock (seconds since the first frame pushed). Iteration ends after ``end_input()`` once
    the plugin has said everything; ``close()`` ends it at once. A plugin error is re-raised
    to the iterating greenlet. ``recv(timeout=)`` waits for one event.
    """

    #: emit STTMetrics per FINAL_TRANSCRIPT (adapters that forward batch metrics turn it off)
    _stream_metrics = True

    def __init__(self, stt: STT, language: str | None) -> None:
        super().__init__()
        self._stt = stt
        self._language = language
        self._audio_in = 0.0  # seconds of audio handed to the plugin (or skipped) so far
        self._audio_since_final = 0.0
        self._spawn_producer(self._run)

    def push_frame(self, frame: Any) -> None:
        """Queue an ``rtc.AudioFrame``. Never blocks.

        ``RuntimeError`` after ``end_input()`` or ``close()``."""
        self._push("push_frame", frame)

    def _on_input(self, frame: Any) -> None:
        duration = _duration(frame)
        self._audio_in += duration
        self._audio_since_final += duration

    def _run(self) -> None:
        for frames in self._segments():
            self._recognize_segment(frames)

    def _recognize_segment(self, frames: Iterator[Any]) -> None:
        offset = self._audio_in  # where this segment's audio starts on the stream's clock
        events = self._stt._stream(frames, self._language)
        try:
            for event in events:
                if offset:
                    _shift_times(event, offset)
                self._out.send_nowait(event)
                if self._stream_metrics and event.type is SpeechEventType.FINAL_TRANSCRIPT:
                    self._stt._emit_metrics(
                        STTMetrics(
                            label=self._stt.label,
                            request_id=event.request_id,
                            timestamp=time.time(),
                            duration=0.0,
                            audio_duration=self._audio_since_final,
                            streamed=True,
                        )
                    )
                    self._audio_since_final = 0.0
        finally:
            close = getattr(events, "close", None)
            if close is not None:  # run the plugin's finally blocks now, in this greenlet
                close()


def _shift_times(event: SpeechEvent, offset: float) -> None:
    # a plugin's times count from the start of the frames it was given; (0, 0) means unknown
    for alt in event.alternatives:
        if alt.start_time or alt.end_time:
            alt.start_time += offset
            alt.end_time += offset


def _duration(frame: Any) -> float:
    return float(frame.samples_per_channel) / float(frame.sample_rate)
