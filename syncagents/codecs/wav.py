"""16-bit PCM WAV files with the stdlib ``wave`` module.

File I/O here is plain blocking I/O (gevent does not make disk access cooperative); it is
fast for the sizes involved (recordings, test fixtures). ``WavWriter`` rewrites the header
after every frame, so a recording cut off by a crash is still a valid file.
"""

from __future__ import annotations

import io
import os
import wave
from collections.abc import Iterable
from typing import IO, Any, Union

import numpy as np

from .. import rtc

__all__ = ["WavWriter", "read_wav", "wav_bytes", "write_wav"]

PathOrFile = Union[str, "os.PathLike[str]", IO[bytes]]


def _to_int16(raw: bytes, sampwidth: int) -> np.ndarray:
    if sampwidth == 2:
        return np.frombuffer(raw, dtype="<i2")
    if sampwidth == 1:  # 8-bit WAV is unsigned
        return ((np.frombuffer(raw, dtype=np.uint8).astype(np.int16) - 128) << 8).astype(
            np.int16
        )
    if sampwidth == 3:  # keep the top two bytes of each little-endian 24-bit sample
        b = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3)
        return (b[:, 1].astype(np.uint16) | (b[:, 2].astype(np.uint16) << 8)).view(np.int16)
    if sampwidth == 4:
        return (np.frombuffer(raw, dtype="<i4") >> 16).astype(np.int16)
    raise ValueError(f"unsupported WAV sample width {sampwidth} bytes")


def read_wav(source: PathOrFile | bytes | bytearray | memoryview) -> tuple[Any, int, int]:
    """Reads a PCM WAV (8/16/24/32-bit integer samples) as ``(frame, sample_rate,
    num_channels)``: one ``rtc.AudioFrame`` holding the whole file, converted to int16."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        source = io.BytesIO(bytes(source))
    elif isinstance(source, os.PathLike):
        source = os.fspath(source)  # wave.open takes str paths only (before 3.12)
    try:
        with wave.open(source, "rb") as w:  # type: ignore[arg-type]
            channels, sampwidth, rate = w.getnchannels(), w.getsampwidth(), w.getframerate()
            raw = w.readframes(w.getnframes())
    except wave.Error as e:
        raise ValueError(f"not a PCM WAV file: {e}") from e
    pcm = np.ascontiguousarray(_to_int16(raw, sampwidth))
    n = pcm.size // channels
    frame = rtc.AudioFrame(pcm[: n * channels].tobytes(), rate, channels, n)
    return frame, rate, channels


def _frames(frames: Any | Iterable[Any]) -> list[Any]:
    return [frames] if isinstance(frames, rtc.AudioFrame) else list(frames)


def write_wav(dest: PathOrFile, frames: Any | Iterable[Any]) -> None:
    """Writes frames (one or several, same rate and channels) as a 16-bit PCM WAV."""
    frames = _frames(frames)
    if not frames:
        raise ValueError("write_wav: no frames (the sample rate would be unknown)")
    with WavWriter(dest, frames[0].sample_rate, frames[0].num_channels) as w:
        for f in frames:
            w.write_frame(f)


def wav_bytes(frames: Any | Iterable[Any]) -> bytes:
    """The WAV file ``write_wav`` would write, as bytes."""
    buf = io.BytesIO()
    write_wav(buf, frames)
    return buf.getvalue()


class WavWriter:
    """Streams frames into a WAV file: ``write_frame(frame)`` per frame, then ``close()``.

    Rate and channel count come from the arguments or, when omitted, from the first frame;
    a later frame that differs raises ``ValueError`` (resample first). Closed without any
    frame and without a known format, it leaves an empty 48 kHz mono file.
    """

    def __init__(
        self,
        dest: PathOrFile,
        sample_rate: int | None = None,
        num_channels: int | None = None,
    ) -> None:
        self.sample_rate = sample_rate
        self.num_channels = num_channels
        self.samples_written = 0
        if isinstance(dest, os.PathLike):
            dest = os.fspath(dest)
        # the writer owns the file for its lifetime; close() (or the with block) closes it
        self._w: Any = wave.open(dest, "wb")  # type: ignore[arg-type]  # noqa: SIM115
        self._w.setsampwidth(2)
        self._configured = False
        if sample_rate is not None and num_channels is not None:
            self._configure(sample_rate, num_channels)

    def _configure(self, sample_rate: int, num_channels: int) -> None:
        self.sample_rate, self.num_channels = sample_rate, num_channels
        self._w.setframerate(sample_rate)
        self._w.setnchannels(num_channels)
        self._configured = True

    @property
    def duration(self) -> float:
        """Seconds written so far."""
        return self.samples_written / self.sample_rate if self.sample_rate else 0.0

    def write_frame(self, frame: Any) -> None:
        """Append one ``rtc.AudioFrame`` (int16 samples) to the file.

        Raises ``ValueError`` when the writer is closed, or when the frame's rate or channel count
        differs from the file's (the first frame sets them when they were not given).
        """
        if self._w is None:
            raise ValueError("WavWriter is closed")
        if not self._configured:
            self._configure(
                self.sample_rate or frame.sample_rate, self.num_channels or frame.num_channels
            )
        if frame.sample_rate != self.sample_rate or frame.num_channels != self.num_channels:
            raise ValueError(
                f"WavWriter: frame is {frame.sample_rate} Hz/{frame.num_channels} ch, file is "
                f"{self.sample_rate} Hz/{self.num_channels} ch"
            )
        n = frame.samples_per_channel * frame.num_channels
        pcm = np.frombuffer(frame.data, dtype=np.int16, count=n)
        self._w.writeframes(pcm.astype("<i2", copy=False).tobytes())
        self.samples_written += frame.samples_per_channel

    def close(self) -> None:
        """Finish the WAV header and close the file; calling it again does nothing.

        Closed before any frame and without a known format, the file is an empty 48 kHz mono WAV.
        """
        if self._w is None:
            return
        if not self._configured:
            self._configure(self.sample_rate or 48000, self.num_channels or 1)
        self._w.close()
        self._w = None

    def __enter__(self) -> WavWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
