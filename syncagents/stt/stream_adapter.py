"""``StreamAdapter``: a streaming STT built from a batch STT and a VAD.

The VAD cuts the audio into speech segments; each END_OF_SPEECH segment goes to the batch
STT's ``recognize``. A segment is recognized in its own greenlet while later audio keeps
arriving (and later segments may be recognized concurrently), yet events come out in order,
per segment: START_OF_SPEECH, FINAL_TRANSCRIPT (only if the text is not empty),
END_OF_SPEECH. ``start_time``/``end_time`` become seconds from the start of the stream: the
batch STT's times (relative to the segment audio it was given) shifted by where that audio
starts, or the VAD's speech bounds when the batch STT leaves both at 0. ``flush()`` ends the
VAD's input (a fresh VAD stream takes the audio after it), so a speech in progress is
recognized at once: START_OF_SPEECH, FINAL_TRANSCRIPT, END_OF_SPEECH for what was heard.

It is written as an ordinary streaming plugin (``_stream``), so it also shows how to write one.
``segment_stream()`` skips its VAD: it recognizes the segments of a VAD stream that already
runs (``VoiceAssistant`` feeds it from the one its endpointing uses).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import gevent
from gevent import Greenlet
from gevent.pool import Group

from .. import vad as vad_mod
from ..channel import Chan
from ..utils.input_stream import Flush, InputStream
from .stt import STT, SpeechData, SpeechEvent, SpeechEventType, SpeechStream, STTCapabilities

__all__ = ["SegmentStream", "StreamAdapter"]


class _AdapterStream(SpeechStream):
    # the wrapped STT's recognize() already reports metrics for every segment
    _stream_metrics = False


class StreamAdapter(STT):
    """A streaming STT built from a batch ``stt`` and a ``vad``.

    The VAD cuts the audio into speech segments and each one goes to ``stt.recognize()`` in its own
    greenlet; events come out in order, per segment: START_OF_SPEECH, FINAL_TRANSCRIPT (when the
    text is not empty), END_OF_SPEECH. The wrapped STT's metrics are forwarded.
    """

    def __init__(self, *, stt: STT, vad: vad_mod.VAD) -> None:
        super().__init__(
            capabilities=STTCapabilities(streaming=True, interim_results=False)
        )
        self._stt = stt
        self._vad = vad
        stt.on("metrics_collected", self._emit_metrics)

    @property
    def wrapped_stt(self) -> STT:
        """The batch STT that recognizes each segment."""
        return self._stt

    @property
    def vad(self) -> vad_mod.VAD:
        """The VAD that cuts the audio into speech segments."""
        return self._vad

    @property
    def label(self) -> str:
        """The wrapped STT's label with `` (StreamAdapter)`` appended."""
        return f"{self._stt.label} (StreamAdapter)"

    def recognize(
        self, frames: Any, language: str | None = None, timeout: float | None = None
    ) -> SpeechEvent:
        # straight to the wrapped STT (its metrics are forwarded, so none are added here)
        return self._stt.recognize(frames, language, timeout)

    def _recognize(self, frames: list[Any], language: str | None) -> SpeechEvent:
        return self._stt.recognize(frames, language)

    def stream(self, language: str | None = None) -> SpeechStream:
        return _AdapterStream(self, language)

    def close(self) -> None:
        self._stt.off("metrics_collected", self._emit_metrics)

    def segment_stream(self, language: str | None = None) -> SegmentStream:
        """A stream that recognizes the speech segments of a VAD stream run elsewhere.

        Push the ``VADEvent``s of a VAD stream that already listens to the audio
        (``push_vad_event``); each END_OF_SPEECH segment is recognized as ``stream()`` would,
        with the same events in the same order. No second VAD runs: ``VoiceAssistant`` feeds
        it from the VAD stream its endpointing uses. Times are on that VAD stream's clock.
        """
        return SegmentStream(self, language)

    def _stream(self, frames: Iterator[Any], language: str | None) -> Iterator[SpeechEvent]:
        vad_stream = self._vad.stream()

        def feed() -> None:
            for frame in frames:
                vad_stream.push_frame(frame)
            vad_stream.end_input()

        feeder = gevent.spawn(feed)
        try:
            yield from self._events_from_vad(vad_stream, language)
        finally:
            vad_stream.close()
            feeder.kill(block=True, timeout=5)

    def _events_from_vad(
        self, vad_events: Iterable[vad_mod.VADEvent], language: str | None
    ) -> Iterator[SpeechEvent]:
        """VAD events → speech events: START_OF_SPEECH at once, and each END_OF_SPEECH
        segment recognized in its own greenlet, its events yielded in stream order."""
        # in stream order: ready events, or greenlets whose value is a segment's events
        ordered: Chan[SpeechEvent | Greenlet] = Chan()
        group = Group()

        def segment() -> None:
            try:
                for ev in vad_events:
                    if ev.type is vad_mod.VADEventType.START_OF_SPEECH:
                        ordered.send_nowait(SpeechEvent(SpeechEventType.START_OF_SPEECH))
                    elif ev.type is vad_mod.VADEventType.END_OF_SPEECH:
                        ordered.send_nowait(group.spawn(self._recognize_segment, ev, language))
            except Exception as exc:
                ordered.close_with_error(exc)
            else:
                ordered.close()

        group.spawn(segment)
        try:
            for item in ordered:
                if isinstance(item, Greenlet):
                    result = item.get()
                    if isinstance(result, Exception):
                        raise result
                    yield from result
                else:
                    yield item
        finally:
            group.kill(block=True, timeout=5)

    def _recognize_segment(
        self, ev: vad_mod.VADEvent, language: str | None
    ) -> list[SpeechEvent] | Exception:
        # the error is returned, not raised: the stream re-raises it in order, and gevent
        # would otherwise also print it as an unhandled greenlet failure
        try:
            final = self._stt.recognize(ev.frames, language)
        except Exception as exc:
            return exc
        # the END_OF_SPEECH frames end at ev.timestamp
        offset = ev.timestamp - sum(f.samples_per_channel / f.sample_rate for f in ev.frames)
        speech_end = ev.timestamp - ev.silence_duration
        for alt in final.alternatives:
            if not alt.start_time and not alt.end_time:
                alt.start_time, alt.end_time = speech_end - ev.speech_duration, speech_end
            else:
                alt.start_time += offset
                alt.end_time += offset
        events = []
        if final.text.strip():
            events.append(
                SpeechEvent(
                    SpeechEventType.FINAL_TRANSCRIPT,
                    alternatives=final.alternatives or [SpeechData(text=final.text)],
                    request_id=final.request_id,
                )
            )
        events.append(SpeechEvent(SpeechEventType.END_OF_SPEECH, request_id=final.request_id))
        return events


class SegmentStream(InputStream[vad_mod.VADEvent, SpeechEvent]):
    """``StreamAdapter.segment_stream()``: push the events of a VAD stream
    (``push_vad_event``) from one greenlet, iterate ``SpeechEvent`` in another.

    Each START_OF_SPEECH becomes a START_OF_SPEECH at once; each END_OF_SPEECH segment goes to
    the batch STT in its own greenlet, and its FINAL_TRANSCRIPT (if the text is not empty) and
    END_OF_SPEECH come out in order. Other events are ignored, as is ``flush()`` (the VAD
    stream draws the segment boundaries: flush that one). Iteration ends after
    ``end_input()`` once every segment pushed before is recognized; ``close()`` ends it at
    once. A recognition error is re-raised to the iterating greenlet.
    """

    def __init__(self, adapter: StreamAdapter, language: str | None) -> None:
        super().__init__()
        self._adapter = adapter
        self._language = language
        self._spawn_producer(self._run)

    def push_vad_event(self, event: vad_mod.VADEvent) -> None:
        """Queue a ``VADEvent``. Never blocks. ``RuntimeError`` after ``end_input()`` or
        ``close()``."""
        self._push("push_vad_event", event)

    def _vad_events(self) -> Iterator[vad_mod.VADEvent]:
        for item in self._input:
            if not isinstance(item, Flush):
                yield item

    def _run(self) -> None:
        for event in self._adapter._events_from_vad(self._vad_events(), self._language):
            self._out.send_nowait(event)
