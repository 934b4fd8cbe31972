"""Records what the agent publishes, on the real-time timeline, to a WAV file and/or speaker.

Frames arrive paced by the agent's ``AudioSource``; when the agent is silent no frames come,
so gaps are filled with silence from the wall clock. The file is mono 16-bit at the rate of
the agent's source.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import gevent
import gevent.pool
import numpy as np
from loguru import logger

from .. import rtc
from ..codecs.wav import WavWriter
from ..rtc.track import source_rate_of

# a gap shorter than this is jitter in frame delivery, not silence
_GAP_TOLERANCE_S = 0.03
# frames quieter than this (int16 peak) do not count as the agent speaking
_VOICE_PEAK = 300


class AgentRecorder:
    def __init__(
        self,
        output: str | None,
        *,
        t0: float | None = None,
        sink: Callable[[Any], None] | None = None,
    ) -> None:
        self._path = output
        self._writer: WavWriter | None = None
        self._sink = sink
        self._group = gevent.pool.Group()
        self.t0 = t0 if t0 is not None else time.monotonic()
        self.rate: int | None = None
        self.written_s = 0.0
        self.last_voice_at: float | None = None
        self.voiced_s = 0.0
        self._streams: list[rtc.AudioStream] = []

    def attach(self, publication: Any) -> None:
        """Start recording a track the agent published (the first audio track wins)."""
        if self.rate is not None or int(publication.kind) != int(rtc.TrackKind.KIND_AUDIO):
            return
        self.rate = source_rate_of(publication.track) or 48000
        if self._path:
            self._writer = WavWriter(self._path, self.rate, 1)
        stream = rtc.AudioStream(publication.track, self.rate, 1)
        self._streams.append(stream)
        self._group.spawn(self._record, stream)

    def _record(self, stream: rtc.AudioStream) -> None:
        for ev in stream:
            frame = ev.frame
            now = time.monotonic()
            duration = frame.samples_per_channel / frame.sample_rate
            began = now - self.t0 - duration  # when this frame started to play
            if began - self.written_s > _GAP_TOLERANCE_S:
                self._silence(began - self.written_s)
            self._write(frame)
            peak = int(np.abs(np.frombuffer(frame.data, dtype=np.int16)).max(initial=0))
            if peak >= _VOICE_PEAK:
                self.last_voice_at = now
                self.voiced_s += duration

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
        """Stop, pad the file with the silence up to now, and finish it."""
        for stream in self._streams:
            stream.close()
        self._group.join(timeout=2)
        self._group.kill(block=True, timeout=2)
        if self.rate is not None:
            tail = time.monotonic() - self.t0 - self.written_s
            if tail > _GAP_TOLERANCE_S:
                self._silence(tail)
        if self._writer is not None:
            self._writer.close()
            logger.debug("wrote {:.2f} s of agent audio to {}", self.written_s, self._path)
        elif self._path:  # the agent never published audio: still leave a valid (empty) file
            WavWriter(self._path, 48000, 1).close()
