"""Records what the agent publishes, on the real-time timeline, to a WAV file and/or speaker.

Frames arrive paced by the agent's ``AudioSource``; when the agent is silent no frames come, so
gaps are filled with silence. Each frame is placed where it was played: the time it came out of
the agent's track is taken on the bridge loop's thread as it arrives
(``rtc.realtime.StampedAudioStream``: a greenlet reading it later, after plugins held the hub,
would place it late), and frames that follow each other without a gap are written back to back
(their playout positions on the track). The file is mono 16-bit at the rate of the agent's
source. It is opened when the recorder is made (a path that cannot be written fails before the
agent starts) and its header is rewritten after every frame, so it is a valid WAV at any moment,
also when the process is cut short.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable
from typing import Any

import gevent
import gevent.pool
import numpy as np
from loguru import logger

from .. import rtc
from ..codecs.wav import WavWriter
from ..rtc.realtime import StampedAudioStream
from ..rtc.track import source_rate_of

__all__ = ["VOICE_PEAK", "AgentRecorder"]

# a gap shorter than this is jitter in frame delivery, not silence (the arrival bounds of the
# frames after a frame take out the lateness of its own stamp: what remains is small)
_GAP_TOLERANCE_S = 0.015
# frames quieter than this (int16 peak) do not count as the agent speaking
VOICE_PEAK = 300


# a frame is written this long after it arrived: the frames arriving meanwhile tell where a
# burst (frames held up together, then delivered at once) really played
_WINDOW_S = 0.2


class AgentRecorder:
    """Reads the agent's first audio track (``attach``) and writes it to ``output`` and/or
    ``sink``; ``on_voice(began_at)`` is called for every frame with speech in it
    (``began_at``: ``time.monotonic()`` when the frame started to play).

    ``max_misplaced_s``: the largest distance between where a frame was written in the file
    and where it played (``t0`` being the file's start)."""

    def __init__(
        self,
        output: str | None,
        *,
        t0: float | None = None,
        sink: Callable[[Any], None] | None = None,
        on_voice: Callable[[float], None] | None = None,
    ) -> None:
        self._path = output
        # opened now: rate and channels come with the first frame
        self._writer: WavWriter | None = WavWriter(output) if output else None
        self._sink = sink
        self._on_voice = on_voice
        self._group = gevent.pool.Group()
        self.t0 = t0 if t0 is not None else time.monotonic()
        self.rate: int | None = None
        self.written_s = 0.0
        self.last_voice_at: float | None = None
        self.voiced_s = 0.0
        self.max_misplaced_s = 0.0
        self._arrived_s = 0.0  # seconds of audio that came out of the track
        # [began no later than - audio before it, arrived at, frame, audio before it, voiced]
        self._pending: collections.deque[list[Any]] = collections.deque()
        self._streams: list[StampedAudioStream] = []
        self._closed = False

    def attach(self, publication: Any) -> None:
        """Start recording a track the agent published (the first audio track wins)."""
        if self._closed or self.rate is not None:
            return
        if int(publication.kind) != int(rtc.TrackKind.KIND_AUDIO):
            return
        self.rate = source_rate_of(publication.track) or 48000
        stream = StampedAudioStream(publication.track, self.rate)
        self._streams.append(stream)
        self._group.spawn(self._record, stream)

    def _record(self, stream: StampedAudioStream) -> None:
        frames = stream.frames
        try:
            while True:
                try:
                    self._arrive(*frames.next(timeout=_WINDOW_S))
                    # everything already here bounds the pending frames: read it all first
                    while True:
                        try:
                            self._arrive(*frames.next(timeout=0))
                        except TimeoutError:
                            break
                except TimeoutError:
                    pass
                self._place(time.monotonic() - _WINDOW_S)
        except StopIteration:
            pass
        finally:
            self._place(float("inf"))

    def _arrive(self, at: float, frame: Any) -> None:
        """A frame came out of the track at ``at``: it bounds when the pending ones played."""
        duration = frame.samples_per_channel / frame.sample_rate
        self._arrived_s += duration
        # played back to back up to this frame, a pending frame began no later than this
        # frame's arrival minus the audio from it to here (a burst after a stall of the
        # thread that stamps them moves the whole burst back to where it played)
        bound = at - self._arrived_s
        for pending in self._pending:
            if bound < pending[0]:
                pending[0] = bound
        peak = int(np.abs(np.frombuffer(frame.data, dtype=np.int16)).max(initial=0))
        voiced = peak >= VOICE_PEAK
        self._pending.append([bound, at, frame, self._arrived_s - duration, voiced])
        if voiced:
            self.last_voice_at = at  # at once: the session's idea of quiet must not lag

    def _place(self, until: float) -> None:
        """Write the pending frames that arrived before ``until`` where they played."""
        while self._pending and self._pending[0][1] <= until:
            bound, _at, frame, before, voiced = self._pending.popleft()
            duration = frame.samples_per_channel / frame.sample_rate
            played_at = bound + before  # time.monotonic() when the frame started to play
            began = played_at - self.t0
            if began - self.written_s > _GAP_TOLERANCE_S:
                self._silence(began - self.written_s)
            # how far from where it played the frame lands in the file (jitter written back
            # to back: up to the gap tolerance)
            self.max_misplaced_s = max(self.max_misplaced_s, abs(self.written_s - began))
            self._write(frame)
            if voiced:
                self.voiced_s += duration
                if self._on_voice is not None:
                    self._on_voice(played_at)

    def _silence(self, seconds: float) -> None:
        assert self.rate is not None
        n = int(seconds * self.rate)
        if n > 0:
            self._write(rtc.AudioFrame(bytes(2 * n), self.rate, 1, n))

    def _write(self, frame: Any) -> None:
        self.written_s += frame.samples_per_channel / frame.sample_rate
        if self._writer is not None:
            self._writer.write_frame(frame)
        if self._sink is not None:
            self._sink(frame)

    def close(self) -> None:
        """Stop, pad the file with the silence up to now, and finish it. Idempotent."""
        if self._closed:
            return
        self._closed = True
        for stream in self._streams:
            stream.close()
        self._group.join(timeout=2)
        self._group.kill(block=True, timeout=2)
        if self.rate is not None:
            tail = time.monotonic() - self.t0 - self.written_s
            if tail > _GAP_TOLERANCE_S:
                self._silence(tail)
        if self._writer is not None:
            # without any frame (the agent never spoke) this leaves an empty 48 kHz mono WAV
            self._writer.close()
            logger.debug("wrote {:.2f} s of agent audio to {}", self.written_s, self._path)
