"""Audio kept on the real-time clock by the bridge loop's thread, not by a greenlet.

A greenlet that plays or stamps audio runs only when the hub lets it: a plugin holding the hub
(a decode, a synthesis) would make every frame after it play late, and the lateness grows with
each turn. The console's microphone and its recorder of the agent's voice need real time, so
their timing lives here, on the loop that runs livekit's media, and greenlets only queue audio
and read timestamps.
"""

from __future__ import annotations

import collections
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any, Protocol

import gevent.event

from .. import _bridge
from ._blocking import lk, track_for_exit, unwrap
from .audio_source import AudioSource

__all__ = ["Clip", "ClipAudio", "RealtimeFeed", "StampedAudioStream"]


class ClipAudio(Protocol):
    """Audio to play: frames of ``frame_ms`` each, speech up to frame ``speech_frames``."""

    @property
    def frames(self) -> Sequence[Any]:
        """The audio frames, in order."""
        ...

    @property
    def speech_frames(self) -> int:
        """How many frames, from the first, hold the speech (the rest is trailing silence)."""
        ...


class Clip:
    """One piece of audio queued on a :class:`RealtimeFeed`.

    ``started_at`` / ``speech_ended_at`` (``time.monotonic()``) are when its first frame and
    the end of its last frame with speech play, on the feed's real-time schedule;
    ``start_frame`` is its first frame's index on that schedule (frames since the feed
    opened). ``done`` is set once all of it was handed to the source.
    """

    def __init__(self, audio: ClipAudio) -> None:
        self.audio = audio
        self.start_frame: int | None = None
        self.started_at: float | None = None
        self.speech_ended_at: float | None = None
        self.done = gevent.event.Event()


class RealtimeFeed:
    """A microphone: plays queued clips into ``source``, silence in between, until the
    greenlet running :meth:`run` is killed. A real microphone keeps sending after its user
    stops talking; so does the feed, or a listener's VAD would never see the speech end.

    Frame ``n`` is due at ``origin + n * frame_ms`` (an absolute schedule: a late wake-up does
    not push the frames after it back); the source's blocking capture paces the frames (its
    queue holds ``queue_size_ms`` ahead). A frame of silence whose time has already passed is
    skipped, so a stall is caught up in the next pause; a clip's frames are never dropped.
    ``origin`` (``time.monotonic()``) is when frame 0 is due (default: when the first frame
    is). ``max_late_s``: how late a frame was handed over against its schedule, at worst (0:
    the source's queue kept running ahead of the schedule; positive: a frame reached the
    listener that late).
    """

    def __init__(self, source: AudioSource, origin: float | None = None, frame_ms: int = 10):
        self.source = source
        self.frame_ms = frame_ms
        samples = source.sample_rate * frame_ms // 1000
        self._silence = lk.AudioFrame(
            bytes(2 * samples * source.num_channels), source.sample_rate, source.num_channels,
            samples,
        )
        self._clips: collections.deque[Clip] = collections.deque()
        self._current: Clip | None = None
        self.origin: float | None = origin
        self.position = 0  # index of the next frame on the schedule
        self.max_late_s = 0.0
        self.skipped = 0  # frames of silence skipped to catch up
        self._stopping = False
        self._played_until = 0.0  # when the last clip's last frame has played

    def say(self, audio: ClipAudio) -> Clip:
        """Queue ``audio``; it plays after the clips queued before it. Returns at once."""
        clip = Clip(audio)
        self._clips.append(clip)
        return clip

    @property
    def playing(self) -> bool:
        """A clip is playing or waiting to (also while its last frames wait in the source's
        queue)."""
        return (
            self._current is not None
            or bool(self._clips)
            or time.monotonic() < self._played_until
        )

    def frame_time(self, index: int) -> float:
        """``time.monotonic()`` when frame ``index`` of the schedule plays."""
        assert self.origin is not None, "the feed has not started"
        return self.origin + index * self.frame_ms / 1000

    def run(self) -> None:
        """Feed the source until killed: queued clips in order, silence between them."""
        finished = gevent.event.Event()
        _bridge.submit(self._feed(finished))
        try:
            _bridge.wait_event(finished)
        finally:
            self._stopping = True  # the loop task ends at its next frame
            _bridge.wait_event(finished, 2.0)
            if self._current is not None:
                self._current.done.set()

    # -- bridge loop thread ---------------------------------------------------------------------
    async def _feed(self, finished: gevent.event.Event) -> None:
        source = unwrap(self.source)  # livekit's own source: its capture awaits on this loop
        try:
            while not self._stopping:
                if not self._clips:
                    await self._frame(source, self._silence, skippable=True)
                    continue
                clip = self._current = self._clips.popleft()
                try:
                    await self._play(source, clip)
                finally:
                    self._current = None
                    _bridge.post_to_hub(clip.done.set)
        finally:
            _bridge.post_to_hub(finished.set)

    async def _frame(self, source: Any, frame: Any, *, skippable: bool = False) -> None:
        now = time.monotonic()
        if self.origin is None:
            self.origin = now
        due = self.frame_time(self.position)
        if skippable and now > due + self.frame_ms / 1000:
            # this silence should have played already: skip it to be back on schedule
            self.position += 1
            self.skipped += 1
            return
        await source.capture_frame(frame)
        late = time.monotonic() - self.frame_time(self.position)
        if late > self.max_late_s:
            self.max_late_s = late
        self.position += 1

    async def _play(self, source: Any, clip: Clip) -> None:
        now = time.monotonic()
        if self.origin is None:
            self.origin = now
        behind = int((now - self.frame_time(self.position)) * 1000) // self.frame_ms
        if behind > 0:
            # the silence before the clip should have played by now: skip it, the clip
            # starts on schedule (the feed started late, or a stall ended in this pause)
            self.position += behind
            self.skipped += behind
        clip.start_frame = self.position
        clip.started_at = self.frame_time(self.position)
        speech_frames = clip.audio.speech_frames
        if speech_frames == 0:
            clip.speech_ended_at = clip.started_at
        else:
            clip.speech_ended_at = self.frame_time(self.position + speech_frames)
        for frame in clip.audio.frames:
            if self._stopping:
                return
            await self._frame(source, frame)
        self._played_until = self.frame_time(self.position)


class StampedAudioStream:
    """The frames of a remote audio track with ``time.monotonic()`` of their arrival, taken on
    the bridge loop's thread as each arrives (a greenlet reading them later, after plugins
    held the hub, would stamp them late): ``for at, frame in stream.frames``. Mono at
    ``sample_rate``; up to ``buffer_frames`` wait for the reader (a long hub stall must not
    push back on the track: its frames would then be stamped late)."""

    def __init__(self, track: Any, sample_rate: int, buffer_frames: int = 3000) -> None:
        self._track = unwrap(track)
        self._rate = sample_rate
        self._lk: Any = None
        self.frames: _bridge.BlockingIterator[tuple[float, Any]] = _bridge.BlockingIterator(
            self._open, maxsize=buffer_frames, on_close=self._aclose
        )
        track_for_exit(self)  # one never closed is closed before the loop stops

    def _open(self) -> AsyncIterator[tuple[float, Any]]:  # loop thread
        self._lk = lk.AudioStream(
            self._track, loop=_bridge.loop(), sample_rate=self._rate, num_channels=1
        )
        return self._stamped(self._lk)

    @staticmethod
    async def _stamped(stream: Any) -> AsyncIterator[tuple[float, Any]]:
        async for ev in stream:
            yield time.monotonic(), ev.frame

    async def _aclose(self) -> None:
        stream, self._lk = self._lk, None
        if stream is not None:
            await stream.aclose()

    async def _aclose_for_exit(self) -> None:
        await self._aclose()

    def close(self) -> None:
        """End the iteration (any greenlet)."""
        self.frames.close()
