"""What the user says in the console: audio files decoded into 10 ms frames for the user's
microphone (``rtc.realtime.RealtimeFeed`` plays them at real-time pace, silence between).

Input files are decoded up front with PyAV (any format it reads: WAV of any width/rate/channels,
MP3, OGG/Opus, FLAC...), so a file that cannot be used fails before the agent starts.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import rtc
from ..runtime import to_thread
from ..testing.local_room import USER_RATE

__all__ = ["AUDIO_SUFFIXES", "InputError", "UserAudio", "load_audio"]

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
