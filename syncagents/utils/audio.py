"""Small helpers around ``rtc.AudioFrame`` (int16 interleaved PCM).

All of these are quick numpy operations on frames of a few ms to a few s and run inline in
the calling greenlet; for minutes of audio at once, call them through ``syncagents.to_thread``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any, Union

import numpy as np
from numpy.typing import NDArray

from .. import rtc

__all__ = [
    "AudioByteStream",
    "Resampler",
    "from_float32",
    "merge_frames",
    "resample",
    "rms_dbfs",
    "sine_frame",
    "split_frames",
    "to_float32",
]

FrameOrFrames = Union[Any, Sequence[Any]]  # rtc.AudioFrame or a sequence of them


def _as_list(frames: FrameOrFrames) -> list[Any]:
    if isinstance(frames, rtc.AudioFrame):
        return [frames]
    return list(frames)


def _samples(frame: Any) -> NDArray[np.int16]:
    """The frame's int16 samples, interleaved, as a flat (read-only view) array."""
    n = frame.samples_per_channel * frame.num_channels
    return np.frombuffer(frame.data, dtype=np.int16, count=n)


def _frame(samples: NDArray[np.int16], sample_rate: int, num_channels: int) -> Any:
    data = np.ascontiguousarray(samples, dtype=np.int16)
    return rtc.AudioFrame(
        data.tobytes(), sample_rate, num_channels, data.size // num_channels
    )


def merge_frames(frames: Iterable[Any]) -> Any:
    """One frame holding ``frames`` back to back. They must share rate and channel count."""
    frames = list(frames)
    if not frames:
        raise ValueError("merge_frames: no frames")
    rate, channels = frames[0].sample_rate, frames[0].num_channels
    for f in frames:
        if f.sample_rate != rate or f.num_channels != channels:
            raise ValueError(
                f"merge_frames: frames differ ({f.sample_rate} Hz/{f.num_channels} ch vs "
                f"{rate} Hz/{channels} ch)"
            )
    return _frame(np.concatenate([_samples(f) for f in frames]), rate, channels)


def split_frames(
    frame_or_frames: FrameOrFrames, frame_ms: int = 10, *, pad_last: bool = False
) -> list[Any]:
    """Cuts audio into frames of exactly ``frame_ms`` ms.

    A frame holds ``sample_rate * frame_ms // 1000`` samples per channel (rounded down when
    the rate is not a multiple of 1000/frame_ms, e.g. 220 for 10 ms at 22050 Hz). The last,
    shorter frame is kept as is, or zero-padded to full size with ``pad_last=True``.
    """
    frames = _as_list(frame_or_frames)
    if not frames:
        return []
    merged = merge_frames(frames) if len(frames) > 1 else frames[0]
    rate, channels = merged.sample_rate, merged.num_channels
    spf = rate * frame_ms // 1000
    if spf <= 0:
        raise ValueError(f"split_frames: {frame_ms} ms is less than one sample at {rate} Hz")
    samples = _samples(merged)
    step = spf * channels
    out = []
    for start in range(0, samples.size, step):
        chunk = samples[start : start + step]
        if chunk.size < step and pad_last:
            chunk = np.concatenate([chunk, np.zeros(step - chunk.size, dtype=np.int16)])
        out.append(_frame(chunk, rate, channels))
    return out


def _downmix(frame: Any) -> Any:
    if frame.num_channels == 1:
        return frame
    x = _samples(frame).reshape(-1, frame.num_channels).astype(np.int32)
    return _frame(x.mean(axis=1).round().astype(np.int16), frame.sample_rate, 1)


class Resampler:
    """Resamples a stream of frames to ``output_rate`` through ``rtc.AudioResampler``.

    The input rate and channel count are taken from the frames (a change mid-stream flushes
    the old resampler and starts a new one). Frames already at ``output_rate`` pass through
    unchanged (no copy, no latency). With ``mono=True`` multi-channel input is averaged down
    to one channel first. Call ``flush()`` at the end of the stream: the resampler holds back
    a few ms of audio.
    """

    def __init__(self, output_rate: int, *, mono: bool = False) -> None:
        self.output_rate = output_rate
        self.mono = mono
        self._rs: Any = None
        self._key: tuple[int, int] | None = None

    def push(self, frame: Any) -> list[Any]:
        """Resample ``frame``; return the output frames ready so far (maybe none).

        A frame whose rate or channel count differs from the previous one's first flushes the old
        resampler: its held-back audio comes first in the result.
        """
        if self.mono:
            frame = _downmix(frame)
        key = (frame.sample_rate, frame.num_channels)
        out: list[Any] = []
        if key != self._key:
            out.extend(self.flush())
            self._key = key
            if frame.sample_rate != self.output_rate:
                self._rs = rtc.AudioResampler(
                    frame.sample_rate, self.output_rate, num_channels=frame.num_channels
                )
        if self._rs is None:
            out.append(frame)
        else:
            out.extend(self._rs.push(frame))
        return out

    def flush(self) -> list[Any]:
        """End of stream: return the audio the resampler still holds, and reset it."""
        out: list[Any] = []
        if self._rs is not None:
            out = list(self._rs.flush())
        self._rs = None
        self._key = None
        return out


def resample(frames: FrameOrFrames, target_rate: int, *, mono: bool = False) -> list[Any]:
    """The whole of ``frames`` at ``target_rate`` (see ``Resampler``)."""
    rs = Resampler(target_rate, mono=mono)
    out: list[Any] = []
    for f in _as_list(frames):
        out.extend(rs.push(f))
    out.extend(rs.flush())
    return out


def to_float32(frame: Any, *, mono: bool = False) -> NDArray[np.float32]:
    """Samples scaled to [-1, 1): shape ``(samples,)`` for mono frames (or with
    ``mono=True``, which averages the channels), else ``(samples, channels)``."""
    x = _samples(frame).astype(np.float32) / 32768.0
    if frame.num_channels == 1:
        return x
    x = x.reshape(-1, frame.num_channels)
    return x.mean(axis=1) if mono else x


def from_float32(array: Any, sample_rate: int, num_channels: int | None = None) -> Any:
    """A frame from float samples in [-1, 1] (clipped): 1-D is mono, 2-D is
    ``(samples, channels)``; ``num_channels`` with 1-D input means interleaved data."""
    x = np.asarray(array, dtype=np.float32)
    if x.ndim == 2:
        channels = x.shape[1]
        if num_channels is not None and num_channels != channels:
            raise ValueError(f"from_float32: array has {channels} channels, not {num_channels}")
        x = x.reshape(-1)
    elif x.ndim == 1:
        channels = num_channels or 1
        if x.size % channels:
            raise ValueError("from_float32: sample count is not a multiple of num_channels")
    else:
        raise ValueError("from_float32: expected a 1-D or 2-D array")
    pcm = np.clip(np.round(x * 32767.0), -32768, 32767).astype(np.int16)
    return _frame(pcm, sample_rate, channels)


def rms_dbfs(frame: Any) -> float:
    """RMS level in dBFS (full scale = 32768); ``-inf`` for digital silence or no samples."""
    x = _samples(frame).astype(np.float64)
    if x.size == 0:
        return -math.inf
    rms = math.sqrt(float(np.mean(x * x)))
    return 20.0 * math.log10(rms / 32768.0) if rms > 0 else -math.inf


def sine_frame(
    freq: float,
    duration: float,
    sample_rate: int = 48000,
    *,
    num_channels: int = 1,
    amplitude: float = 0.5,
    phase: float = 0.0,
) -> Any:
    """A sine tone (same on every channel), ``amplitude`` relative to full scale."""
    n = round(duration * sample_rate)
    t = np.arange(n, dtype=np.float64) / sample_rate
    x = amplitude * np.sin(2.0 * np.pi * freq * t + phase)
    if num_channels > 1:
        x = np.repeat(x[:, None], num_channels, axis=1)
    return from_float32(x.astype(np.float32), sample_rate)


class AudioByteStream:
    """Turns PCM bytes in arbitrary chunks into frames of a fixed size.

    ``write(data)`` returns the frames completed so far; ``flush()`` returns the rest as one
    shorter frame (a trailing partial sample, which can only come from a truncated stream,
    is dropped). ``samples_per_channel`` defaults to 10 ms.
    """

    def __init__(
        self, sample_rate: int, num_channels: int, samples_per_channel: int | None = None
    ) -> None:
        self.sample_rate = sample_rate
        self.num_channels = num_channels
        self.samples_per_channel = samples_per_channel or sample_rate // 100
        self._frame_bytes = self.samples_per_channel * num_channels * 2
        self._buf = bytearray()

    def write(self, data: bytes | bytearray | memoryview) -> list[Any]:
        """Append int16 PCM bytes; return the full-size frames they completed (maybe none)."""
        self._buf += data
        out = []
        fb = self._frame_bytes
        n_full = len(self._buf) // fb
        for i in range(n_full):
            out.append(
                rtc.AudioFrame(
                    bytes(self._buf[i * fb : (i + 1) * fb]),
                    self.sample_rate,
                    self.num_channels,
                    self.samples_per_channel,
                )
            )
        if n_full:
            del self._buf[: n_full * fb]
        return out

    def flush(self) -> list[Any]:
        """Return what is buffered as one shorter frame (none when empty), and empty the buffer.

        A trailing partial sample (only a truncated stream leaves one) is dropped.
        """
        sample_bytes = 2 * self.num_channels
        usable = len(self._buf) - len(self._buf) % sample_bytes
        out = []
        if usable:
            out.append(
                rtc.AudioFrame(
                    bytes(self._buf[:usable]),
                    self.sample_rate,
                    self.num_channels,
                    usable // sample_bytes,
                )
            )
        self._buf.clear()
        return out
