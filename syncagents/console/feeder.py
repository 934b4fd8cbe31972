"""The user's microphone in a LocalRoom: audio files played at real-time pace, silence between.

A real microphone keeps sending after the user stops talking; so do we, or the agent's VAD
would never see the end of the last utterance. Input files are decoded up front with PyAV
(any format it reads: WAV of any width/rate/channels, MP3, OGG/Opus, FLAC...), so a file that
cannot be used fails before the agent starts.
"""

from __future__ import annotations

import collections
import os
import time
from dataclasses import dataclass
from typing import Any

import gevent.event
import numpy as np

from .. import _bridge, rtc
from ..rtc._blocking import unwrap
from ..runtime import to_thread
from ..testing.local_room import USER_RATE

__all__ = ["AUDIO_SUFFIXES", "Clip", "InputError", "InputFeeder", "UserAudio", "load_audio"]

FRAME_MS = 10
_FRAME = USER_RATE * FRAME_MS // 1000
# a 10 ms frame whose int16 peak reaches this is speech (-40 dBFS; the recorder uses the same)...
_VOICE_PEAK = 300
# ...or, in a loud recording with a noise floor, this fraction of the file's own peak (-26 dB)
_VOICE_FRACTION = 0.05
# file names that are audio for ``converse`` (anything PyAV reads may be passed as a Path)
AUDIO_SUFFIXES = (".wav", ".mp3", ".ogg", ".oga", ".opus", ".flac", ".m4a", ".aac", ".webm")


class InputError(ValueError):
    """An input file that cannot be used: missing, empty, unreadable, or without audio."""


@dataclass(frozen=True)
class UserAudio:
    """What the user says: 10 ms mono frames at the user track's rate (48 kHz).

    ``speech_frames`` counts the frames up to the last one with speech in it (the rest is
    trailing silence): the end of the user's speech, from which latency is measured.
    """

    name: str
    frames: list[Any]
    speech_frames: int

    @property
    def duration(self) -> float:
        """Seconds of audio."""
        return len(self.frames) * FRAME_MS / 1000


def audio_from_samples(samples: np.ndarray, name: str = "audio") -> UserAudio:
    """``UserAudio`` from mono int16 samples at 48 kHz."""
    pcm = np.ascontiguousarray(samples, dtype=np.int16)
    n = -(-pcm.size // _FRAME)  # whole frames, the last one padded with silence
    padded = np.zeros(n * _FRAME, dtype=np.int16)
    padded[: pcm.size] = pcm
    blocks = padded.reshape(n, _FRAME) if n else padded.reshape(0, _FRAME)
    peaks = np.abs(blocks.astype(np.int32)).max(axis=1) if n else np.zeros(0, dtype=np.int32)
    threshold = max(_VOICE_PEAK, int(peaks.max(initial=0) * _VOICE_FRACTION))
    voiced = np.flatnonzero(peaks >= threshold)
    frames = [rtc.AudioFrame(block.tobytes(), USER_RATE, 1, _FRAME) for block in blocks]
    return UserAudio(name, frames, int(voiced[-1]) + 1 if voiced.size else 0)


def load_audio(path: str | os.PathLike[str]) -> UserAudio:
    """Decode an audio file (any format PyAV reads) for the user to say.

    Raises :class:`InputError` with a one-line reason for a missing, empty, unreadable or
    silent-by-construction (no samples) file. Decoding runs on a native thread.
    """
    name = os.fspath(path)
    if os.path.isdir(name):
        raise InputError(f"{name} is a folder, not an audio file")
    try:
        size = os.path.getsize(name)
    except OSError as exc:
        raise InputError(f"cannot read {name} ({exc.strerror or exc})") from None
    if size == 0:
        raise InputError(f"{name} is empty")
    samples = to_thread(_decode_file, name)
    if samples.size == 0:
        raise InputError(f"{name} holds no audio samples")
    return audio_from_samples(samples, name)


def _decode_file(path: str) -> np.ndarray:
    """Every sample of the file's first audio stream, as mono int16 at 48 kHz."""
    import av

    chunks: list[np.ndarray] = []
    try:
        with av.open(path) as container:
            if not container.streams.audio:
                raise InputError(f"{path} has no audio stream")
            stream = container.streams.audio[0]
            resampler = av.AudioResampler(format="s16", layout="mono", rate=USER_RATE)
            for packet in container.demux(stream):
                try:
                    decoded = packet.decode()
                except av.error.InvalidDataError:
                    continue  # a corrupt packet: skip it, like a player would
                for frame in decoded:
                    chunks.extend(out.to_ndarray().reshape(-1) for out in resampler.resample(frame))
            chunks.extend(out.to_ndarray().reshape(-1) for out in resampler.resample(None))
    except InputError:
        raise
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        reason = " ".join(str(exc).split())  # one line, whatever FFmpeg said
        raise InputError(f"cannot read {path} as audio ({reason})") from None
    return np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int16)


class Clip:
    """One piece of user audio queued on the microphone.

    ``started_at`` / ``speech_ended_at`` (``time.monotonic()``) are when its first frame and
    the end of its last frame with speech play, on the microphone's real-time schedule;
    ``start_frame`` is its first frame's index on that schedule (10 ms frames since the
    microphone opened). ``done`` is set once all of it was handed to the microphone track.
    """

    def __init__(self, audio: UserAudio) -> None:
        self.audio = audio
        self.start_frame: int | None = None
        self.started_at: float | None = None
        self.speech_ended_at: float | None = None
        self.done = gevent.event.Event()


class InputFeeder:
    """The user's microphone: plays queued clips into ``source``, silence in between, until
    the greenlet running :meth:`run` is killed.

    Real time is kept on the bridge loop's thread, not in a greenlet: plugins that hold the
    hub (a decode, a synthesis) would otherwise starve the feeder and every frame after would
    play late, later with each turn. Frame ``n`` is due at ``origin + n * 10 ms`` (an
    absolute schedule: a late wake-up does not push the frames after it back); the source's
    blocking capture paces the frames (its queue holds ``user_queue_ms`` ahead). A frame of
    silence whose time has already passed is skipped, so a stall is caught up in the next
    pause; a clip's frames are never dropped. ``origin`` (``time.monotonic()``) is when frame 0
    is due: the console gives the agent's join, its output WAV's time 0, so a clip starting at
    frame ``n`` of the microphone starts ``n * 10 ms`` into that file's timeline too.
    ``max_late_s``: how late a frame was handed over against its schedule, at worst (0: the
    source's queue kept running ahead of the schedule; positive: a frame reached the agent
    that late).
    """

    def __init__(self, source: rtc.AudioSource, origin: float | None = None) -> None:
        self.source = source
        self._clips: collections.deque[Clip] = collections.deque()
        self._current: Clip | None = None
        self._silence = rtc.AudioFrame(bytes(2 * _FRAME), USER_RATE, 1, _FRAME)
        # time.monotonic() when frame 0 plays: given (the console's, the agent's join: the
        # output WAV's time 0) or the first frame's; silence due before the start is skipped
        self.origin: float | None = origin
        self.position = 0  # index of the next frame on the schedule
        self.max_late_s = 0.0
        self.skipped = 0  # frames of silence skipped to catch up
        self._stopping = False
        self._played_until = 0.0  # when the last clip's last frame has played

    def say(self, audio: UserAudio) -> Clip:
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
        assert self.origin is not None, "the microphone has not started"
        return self.origin + index * FRAME_MS / 1000

    def run(self) -> None:
        """Feed the microphone until killed: queued clips in order, silence between them."""
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
        if skippable and now > due + FRAME_MS / 1000:
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
        behind = int((now - self.frame_time(self.position)) * 1000) // FRAME_MS
        if behind > 0:
            # the silence before the clip should have played by now: skip it, the clip
            # starts on schedule (the feeder started late, or a stall ended in this pause)
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
