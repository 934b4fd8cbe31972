"""Incremental MP3 decoding on PyAV (libavcodec): bytes in, ``rtc.AudioFrame`` out.

Meant for TTS services that stream MP3 over HTTP: feed whatever chunks arrive. The decoder
is synchronous and CPU-bound (decoding runs several hundred times faster than real time,
so chunks of a few KB take well under a millisecond); callers that hand it large chunks at
once (whole files, > ~1 s of audio) should wrap the call in ``syncagents.to_thread`` so the
hub stays responsive. One decoder per stream; it is not shared between threads.
"""

from __future__ import annotations

from typing import Any

import av
import numpy as np
from loguru import logger
from numpy.typing import NDArray

from .. import rtc

__all__ = ["Mp3StreamDecoder", "encode_mp3", "frame_to_int16"]

_ID3_HEADER_LEN = 10
# good frames after an error before another error counts as a new burst (about 0.25 s)
_BURST_RECOVERY_FRAMES = 10


def _id3_tag_size(header: bytes) -> int | None:
    """Total size of the ID3v2 tag starting at ``header`` (10 bytes), or None if it is not
    a tag header."""
    if header[:3] != b"ID3" or header[3] == 0xFF or header[4] == 0xFF:
        return None
    size_bytes = header[6:10]
    if any(b & 0x80 for b in size_bytes):  # "syncsafe" integers keep the top bit clear
        return None
    size = 0
    for b in size_bytes:
        size = (size << 7) | b
    footer = _ID3_HEADER_LEN if header[5] & 0x10 else 0
    return _ID3_HEADER_LEN + size + footer


def frame_to_int16(frame: Any) -> tuple[NDArray[np.int16], int]:
    """Samples of a PyAV audio frame as flat int16 interleaved, with the channel count.

    Planar formats (``fltp``, ``s16p``, ...) come as (channels, samples) and are transposed;
    packed ones come as one interleaved row. Floats are scaled from [-1, 1] and clipped.
    """
    channels = frame.layout.nb_channels
    arr = frame.to_ndarray()
    if frame.format.is_planar:
        arr = arr.T
    arr = arr.reshape(-1)
    if arr.dtype == np.int16:
        pcm = arr
    elif arr.dtype.kind == "f":
        pcm = np.clip(np.round(arr * 32767.0), -32768, 32767).astype(np.int16)
    elif arr.dtype == np.int32:
        pcm = (arr >> 16).astype(np.int16)
    elif arr.dtype == np.uint8:
        pcm = ((arr.astype(np.int16) - 128) << 8).astype(np.int16)
    else:
        raise ValueError(f"unsupported sample format {frame.format.name}")
    return np.ascontiguousarray(pcm), channels


class Mp3StreamDecoder:
    """Decodes an MP3 byte stream fed in arbitrary chunks.

    ``decode_chunk(data)`` returns the frames completed so far (int16 interleaved, the
    stream's own rate and channel count; one frame per MP3 frame, ~24 ms); ``flush()`` at
    the end of the stream returns the rest and resets the decoder for a new stream.
    ID3v2 tags at the start are skipped. Corrupt data is skipped, logging one warning per
    burst of errors; it never raises.
    """

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self._ctx: Any = av.CodecContext.create("mp3", "r")
        self._at_start = True  # still looking for ID3 tags
        self._head = b""  # start-of-stream bytes held until we know whether they are a tag
        self._skip = 0  # bytes of a tag still to drop
        self._in_burst = False
        self._good_since_error = 0
        self._burst_errors = 0

    def decode_chunk(self, data: bytes | bytearray | memoryview) -> list[Any]:
        """Feed the next bytes of the stream; return the frames they completed (maybe none).

        Frames are int16 interleaved ``rtc.AudioFrame`` at the stream's own rate and channel count.
        ID3v2 tags at the start and corrupt data are skipped (a warning per burst of errors), never
        raised.
        """
        payload = self._strip_tags(bytes(data))
        if not payload:
            return []
        return self._decode(payload)

    def flush(self) -> list[Any]:
        """End of stream: return the frames still held by the decoder, then reset it.

        After ``flush()`` the decoder is ready for a new stream (ID3 tags are looked for again).
        """
        out: list[Any] = []
        if self._head:
            out.extend(self._decode(self._head))
        out.extend(self._decode(None))
        if self._in_burst:
            self._end_burst()
        self._reset()
        return out

    def _strip_tags(self, data: bytes) -> bytes:
        buf = self._head + data if self._head else data
        self._head = b""
        while True:
            if self._skip:
                k = min(self._skip, len(buf))
                buf = buf[k:]
                self._skip -= k
                if self._skip:
                    return b""
            if not self._at_start:
                return buf
            if len(buf) < _ID3_HEADER_LEN:
                if buf[:3] == b"ID3"[: len(buf[:3])]:
                    self._head = buf  # maybe the start of a tag: wait for the full header
                    return b""
                self._at_start = False
                return buf
            size = _id3_tag_size(buf[:_ID3_HEADER_LEN])
            if size is None:
                self._at_start = False
                return buf
            self._skip = size  # tags may follow each other; the loop checks again

    def _decode(self, payload: bytes | None) -> list[Any]:
        out: list[Any] = []
        try:
            packets = self._ctx.parse(payload)
        except Exception as e:  # the parser only splits bytes, but never let a stream raise
            self._error(e)
            return out
        if payload is None:
            packets = [*packets, None]  # then drain the decoder
        for packet in packets:
            try:
                decoded = self._ctx.decode(packet)
            except Exception as e:
                self._error(e)
                continue
            for frame in decoded:
                try:
                    pcm, channels = frame_to_int16(frame)
                except Exception as e:
                    self._error(e)
                    continue
                if pcm.size == 0:
                    continue
                out.append(
                    rtc.AudioFrame(
                        pcm.tobytes(), frame.sample_rate, channels, pcm.size // channels
                    )
                )
                self._good()
        return out

    def _error(self, e: Exception) -> None:
        self._good_since_error = 0
        self._burst_errors += 1
        if not self._in_burst:
            self._in_burst = True
            logger.warning("mp3 decoder: skipping corrupt data ({})", e)

    def _good(self) -> None:
        if self._in_burst:
            self._good_since_error += 1
            if self._good_since_error >= _BURST_RECOVERY_FRAMES:
                self._end_burst()

    def _end_burst(self) -> None:
        logger.debug("mp3 decoder: recovered after {} bad packet(s)", self._burst_errors)
        self._in_burst = False
        self._burst_errors = 0
        self._good_since_error = 0


def encode_mp3(frames: Any, bit_rate: int = 128_000) -> bytes:
    """Encodes int16 frames (one ``rtc.AudioFrame`` or several with the same format) as an
    MP3 file (with the ID3 tag and Xing header libavformat writes). For tests and fakes
    (e.g. a TTS double serving MP3); CPU-bound like decoding."""
    import io

    frames = [frames] if isinstance(frames, rtc.AudioFrame) else list(frames)
    if not frames:
        raise ValueError("encode_mp3: no frames")
    rate, channels = frames[0].sample_rate, frames[0].num_channels
    layout = {1: "mono", 2: "stereo"}.get(channels)
    if layout is None:
        raise ValueError(f"encode_mp3: MP3 holds 1 or 2 channels, not {channels}")
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp3") as container:
        stream: Any = container.add_stream("mp3", rate=rate, layout=layout)
        stream.bit_rate = bit_rate
        pts = 0
        for f in frames:
            if f.sample_rate != rate or f.num_channels != channels:
                raise ValueError("encode_mp3: frames differ in rate or channel count")
            n = f.samples_per_channel * channels
            pcm = np.frombuffer(f.data, dtype=np.int16, count=n).reshape(1, -1)
            af = av.AudioFrame.from_ndarray(pcm, format="s16", layout=layout)
            af.sample_rate = rate
            af.pts = pts
            pts += f.samples_per_channel
            # PyAV re-blocks into the encoder's 1152-sample frames and converts the format
            for packet in stream.encode(af):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return buf.getvalue()
