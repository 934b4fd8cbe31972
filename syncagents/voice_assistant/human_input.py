"""The user's side: their microphone track fanned out to a VAD stream and an STT stream.

``HumanInput`` owns three greenlets: one reads the track (``rtc.AudioStream``) and pushes
every frame to both streams (pushes never block), one iterates VAD events, one iterates STT
events; the events go to the assistant's callbacks in the order each stream produced them.
When the STT is a ``stt.StreamAdapter`` (a batch STT), the VAD stream is the only one that
hears the audio: its events also go to the adapter's ``segment_stream()``, which recognizes
each END_OF_SPEECH segment, so one VAD per participant serves endpointing and recognition.
``is_microphone`` says which published tracks count as the user's voice.

``InputTimeline`` records when each frame reached the agent, so that a position in the
stream (a VAD event's ``timestamp - silence_duration``: where the speech really ended) can
be turned into a clock time: turn-taking counts its delays from that moment.
"""

from __future__ import annotations

import collections
from collections.abc import Callable
from typing import Any

import gevent
from gevent.pool import Group
from loguru import logger

from .. import rtc, stt, vad
from .. import stt as stt_mod
from ..runtime import bind_job_id
from .clock import MONOTONIC, Clock

__all__ = ["INPUT_SAMPLE_RATE", "HumanInput", "InputTimeline", "is_microphone"]

# the rate the track is read at: what VADs and speech recognizers usually run at, so neither
# resamples. 50 ms frames, as livekit-agents' room input reads them: every frame crosses three
# threads (livekit's callback, the bridge loop, the hub), each taking the GIL, so with many
# assistants per process the frame count, not the audio, is the cost (bench/turn.py); the VAD
# still decides per 32 ms window, at most one frame (~25 ms on average) later.
INPUT_SAMPLE_RATE = 16000
_INPUT_FRAME_MS = 50
# how much audio before a position InputTimeline looks at to find the least-delayed frame
_SMOOTHING_S = 1.0


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


class InputTimeline:
    """When the user's audio reached the agent: ``on_audio`` is called for every frame as it
    is handed to the VAD; ``time_of(position)`` gives the clock time at which the audio at
    ``position`` (seconds since the stream began, as in ``VADEvent.timestamp``) arrived.

    Frames come in bursts (the media stack batches them, the hub may be busy), so one frame's
    arrival can be late; the estimate takes the earliest-arriving frame of the second of audio
    leading up to ``position`` (in a continuous stream each frame arrives no earlier than its
    audio was captured, so the smallest delay is the truest). Only the last ``horizon``
    seconds of audio are remembered.
    """

    def __init__(self, clock: Clock = MONOTONIC, *, horizon: float = 30.0) -> None:
        self.clock = clock
        self.horizon = horizon
        self.position = 0.0
        """Seconds of audio received so far."""
        # (stream position at the frame's end, clock time it arrived), oldest first
        self._frames: collections.deque[tuple[float, float]] = collections.deque()

    def on_audio(self, seconds: float) -> None:
        """``seconds`` more audio arrived now."""
        self.position += seconds
        self._frames.append((self.position, self.clock.now()))
        oldest = self.position - self.horizon
        while self._frames and self._frames[0][0] < oldest:
            self._frames.popleft()

    def time_of(self, position: float) -> float | None:
        """Clock time the audio at ``position`` arrived (None: not received, or forgotten)."""
        if not self._frames or position > self.position or position < self._frames[0][0]:
            return None  # not received yet, or the frame that held it is forgotten
        best: float | None = None
        for end, arrived in reversed(self._frames):
            if end < position - _SMOOTHING_S:
                break
            offset = arrived - end
            if end >= position:
                best = offset  # frames later than the one holding ``position`` do not count
            elif best is None or offset < best:
                best = offset
        if best is None:
            return None
        return min(position + best, self.clock.now())


class HumanInput:
    """The user's track fanned out to a VAD stream and an STT stream.

    Three greenlets: one reads ``track`` at 16 kHz mono and pushes every frame to both streams, the
    others pass each VAD and STT event to ``on_vad_event`` / ``on_stt_event`` (an exception there is
    logged, never raised). When the track ends, both streams get ``end_input()``. A
    ``stt.StreamAdapter`` gets no audio: it recognizes the segments of this VAD stream.
    ``timeline`` records when the audio arrived (on ``clock``), for ``speech_ended_at``.
    """

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
        clock: Clock = MONOTONIC,
    ) -> None:
        self.track = track
        self.participant = participant
        self.identity = str(getattr(participant, "identity", ""))
        self.track_sid = track_sid
        self._vad_stream = vad.stream()
        # A batch STT behind a StreamAdapter recognizes the segments of this VAD stream: the
        # adapter's own VAD would run inference a second time on the same audio.
        self._segments: Any = None
        if isinstance(stt, stt_mod.StreamAdapter):
            self._segments = stt.segment_stream()
            self._stt_stream: Any = self._segments
        else:
            self._stt_stream = stt.stream()
        self._audio = rtc.AudioStream(
            track, INPUT_SAMPLE_RATE, 1, frame_size_ms=_INPUT_FRAME_MS
        )
        self._on_vad_event = on_vad_event
        self._on_stt_event = on_stt_event
        self.timeline = InputTimeline(clock)
        self._group = Group()
        self._closed = False
        for fn in (self._read_audio, self._read_vad, self._read_stt):
            g = self._group.spawn(fn)
            if job_id is not None:  # the spawning greenlet may be a short-lived room handler
                bind_job_id(g, job_id)

    def _read_audio(self) -> None:
        vad_stream, stt_stream = self._vad_stream, self._stt_stream
        timeline = self.timeline
        try:
            for ev in self._audio:
                frame = ev.frame
                timeline.on_audio(frame.samples_per_channel / frame.sample_rate)
                vad_stream.push_frame(ev.frame)
                if self._segments is None:
                    stt_stream.push_frame(ev.frame)
        except RuntimeError:  # a stream was closed under us: we are closing
            return
        if not self._closed:  # the track ended: let both streams finish what they have
            vad_stream.end_input()
            if self._segments is None:  # else it ends with the VAD stream (_read_vad)
                stt_stream.end_input()

    def speech_ended_at(self, ev: vad.VADEvent) -> float:
        """Clock time the speech that ``ev`` (an END_OF_SPEECH) ends really ended: when the
        audio where the VAD last heard it reached the agent, before the silence the VAD
        waited for to be sure."""
        at = self.timeline.time_of(ev.timestamp - ev.silence_duration)
        if at is None:  # not in the timeline (a VAD fed from elsewhere): count back from now
            at = self.timeline.clock.now() - ev.silence_duration
        return at

    def _read_vad(self) -> None:
        segments = self._segments
        if segments is None:
            self._read("VAD", self._vad_stream, self._on_vad_event)
            return
        on_vad_event = self._on_vad_event

        def share(ev: vad.VADEvent) -> None:
            if ev.type is not vad.VADEventType.INFERENCE_DONE:  # it only cuts segments
                segments.push_vad_event(ev)
            on_vad_event(ev)

        self._read("VAD", self._vad_stream, share)
        if not self._closed:  # every segment is pushed: the STT side ends after them
            segments.end_input()

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
        """Stop reading: close the audio stream, kill the greenlets, close both streams.

        Waits up to 5 s for the greenlets to die; calling it again does nothing.
        """
        if self._closed:
            return
        self._closed = True
        self._audio.close()
        me = gevent.getcurrent()
        others = [g for g in list(self._group) if g is not me]
        gevent.killall(others, block=True, timeout=5)
        self._vad_stream.close()
        self._stt_stream.close()
