"""The user's side: their microphone track fanned out to a VAD stream and an STT stream.

``HumanInput`` owns three greenlets: one reads the track (``rtc.AudioStream``) and pushes
every frame to both streams (pushes never block), one iterates VAD events, one iterates STT
events; the events go to the assistant's callbacks in the order each stream produced them.
``is_microphone`` says which published tracks count as the user's voice.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gevent
from gevent.pool import Group
from loguru import logger

from .. import rtc, stt, vad
from ..runtime import bind_job_id

__all__ = ["INPUT_SAMPLE_RATE", "HumanInput", "is_microphone"]

# the rate the track is read at: what VADs and speech recognizers usually run at, so neither
# resamples; larger frames than livekit's 10 ms halve the per-frame cost of the fan-out
INPUT_SAMPLE_RATE = 16000
_INPUT_FRAME_MS = 20


def is_microphone(track: Any, publication: Any) -> bool:
    """An audio track published as a microphone (or without saying what it is)."""
    kind = getattr(track, "kind", getattr(publication, "kind", None))
    if kind is not None and int(kind) != int(rtc.TrackKind.KIND_AUDIO):
        return False
    source = getattr(publication, "source", None)
    return source is None or int(source) in (
        int(rtc.TrackSource.SOURCE_MICROPHONE),
        int(rtc.TrackSource.SOURCE_UNKNOWN),
    )


class HumanInput:
    def __init__(
        self,
        *,
        track: Any,
        participant: Any,
        track_sid: str,
        vad: vad.VAD,
        stt: stt.STT,
        on_vad_event: Callable[[vad.VADEvent], None],
        on_stt_event: Callable[[stt.SpeechEvent], None],
        job_id: str | None = None,
    ) -> None:
        self.track = track
        self.participant = participant
        self.identity = str(getattr(participant, "identity", ""))
        self.track_sid = track_sid
        self._vad_stream = vad.stream()
        self._stt_stream = stt.stream()
        self._audio = rtc.AudioStream(
            track, INPUT_SAMPLE_RATE, 1, frame_size_ms=_INPUT_FRAME_MS
        )
        self._on_vad_event = on_vad_event
        self._on_stt_event = on_stt_event
        self._group = Group()
        self._closed = False
        for fn in (self._read_audio, self._read_vad, self._read_stt):
            g = self._group.spawn(fn)
            if job_id is not None:  # the spawning greenlet may be a short-lived room handler
                bind_job_id(g, job_id)

    def _read_audio(self) -> None:
        vad_stream, stt_stream = self._vad_stream, self._stt_stream
        try:
            for ev in self._audio:
                vad_stream.push_frame(ev.frame)
                stt_stream.push_frame(ev.frame)
        except RuntimeError:  # a stream was closed under us: we are closing
            return
        if not self._closed:  # the track ended: let both streams finish what they have
            vad_stream.end_input()
            stt_stream.end_input()

    def _read_vad(self) -> None:
        self._read("VAD", self._vad_stream, self._on_vad_event)

    def _read_stt(self) -> None:
        self._read("STT", self._stt_stream, self._on_stt_event)

    def _read(self, what: str, stream: Any, callback: Callable[[Any], None]) -> None:
        try:
            for ev in stream:
                try:
                    callback(ev)
                except Exception:  # one bad event must not end the conversation
                    logger.opt(exception=True).error("handling a {} event failed", what)
        except Exception:
            if not self._closed:
                logger.opt(exception=True).error("{} stream of {} failed", what, self.identity)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._audio.close()
        me = gevent.getcurrent()
        others = [g for g in list(self._group) if g is not me]
        gevent.killall(others, block=True, timeout=5)
        self._vad_stream.close()
        self._stt_stream.close()
