"""``AudioStreamDecoder``: any audio PyAV reads (MP3, AAC, OGG/Opus, FLAC, WAV...) pushed
in chunks, ``rtc.AudioFrame`` out; and ``StreamBuffer``, the byte pipe it reads from.

Demuxing and decoding run on a native thread, so a large chunk never holds the gevent hub:
the thread reads the pushed bytes through a ``StreamBuffer`` (blocking only itself while it
waits for more), and hands each frame to the hub, where the reader's greenlet picks it up.
The threads come from a pool of the decoders' own, not from ``syncagents.to_thread``'s: a
decoder's thread lives as long as its stream (seconds of TTS audio), and holding the shared
pool that long would hold up the inference calls that need it.

WAV is read by a small RIFF parser here rather than by libavformat, which waits for far more
than a header's worth of a non-seekable WAV stream before giving the first frame.
"""

from __future__ import annotations

import struct
import threading
from collections.abc import Iterator
from types import TracebackType
from typing import Any

import gevent
import gevent.event
import gevent.queue
from loguru import logger

from .. import rtc
from .._bridge import awaiting_threads, in_hub_thread, post_to_hub, real_lock
from .wav import _to_int16

__all__ = ["AudioStreamDecoder", "StreamBuffer"]


# drop consumed bytes once this many have piled up at the front of the buffer
_COMPACT_AT = 1 << 20
# good packets after an error before another error counts as a new burst (one warning each)
_BURST_RECOVERY_PACKETS = 10
# at most this many decoders run at once; more wait for a thread
_MAX_DECODER_THREADS = 64
# PCM bytes converted per step of the WAV path (about 0.1 s of 48 kHz stereo 16-bit)
_WAV_BLOCK = 19200
_WAVE_FORMAT_PCM = 1
# FFmpeg's default layouts by channel count (WAV's own channel mask is not needed to downmix)
_LAYOUTS = {1: "mono", 2: "stereo", 3: "2.1", 4: "quad", 5: "5.0", 6: "5.1", 7: "6.1",
            8: "7.1"}
_WAVE_FORMAT_EXTENSIBLE = 0xFFFE

# container short names for common MIME types (None: let PyAV probe)
_MIME_FORMATS = {
    "audio/mpeg": "mp3", "audio/mp3": "mp3", "audio/x-mpeg": "mp3",
    "audio/aac": "aac", "audio/x-aac": "aac", "audio/aacp": "aac",
    "audio/flac": "flac", "audio/x-flac": "flac",
    "audio/wav": "wav", "audio/wave": "wav", "audio/x-wav": "wav", "audio/vnd.wave": "wav",
    "audio/ogg": "ogg", "audio/opus": "ogg", "audio/webm": "webm", "audio/mp4": "mp4",
}


class StreamBuffer:
    """A byte pipe between two sides, e.g. a greenlet writing and a native thread reading.

    ``write`` never blocks. ``read`` blocks until data, the end of input or ``close()``:
    a native thread waits on an OS lock, a greenlet of the hub's thread waits cooperatively.
    Reads after ``end_input()`` return the rest, then ``b""``; after ``close()``, ``b""`` at
    once (pending data is dropped).
    """

    def __init__(self) -> None:
        self._lock = real_lock()
        self._data = bytearray()
        self._pos = 0
        self._eof = False
        self._closed = False
        self._native_waiters: list[Any] = []
        self._green_waiters: list[gevent.event.Event] = []

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Append ``data``; RuntimeError after ``end_input()`` or ``close()``."""
        with self._lock:
            if self._closed or self._eof:
                raise RuntimeError("StreamBuffer: write after end_input() or close()")
            self._data += data
        self._wake()

    def end_input(self) -> None:
        """No more writes: readers get the rest, then ``b""``."""
        with self._lock:
            self._eof = True
        self._wake()

    def close(self) -> None:
        """Drop what is buffered and wake every reader with ``b""``."""
        with self._lock:
            self._closed = True
            self._data = bytearray()
            self._pos = 0
        self._wake()

    @property
    def closed(self) -> bool:
        """Whether ``close()`` was called (``end_input()`` alone does not close the buffer)."""
        return self._closed

    def _wake(self) -> None:
        with self._lock:
            native, self._native_waiters = self._native_waiters, []
            green, self._green_waiters = self._green_waiters, []
        for waiter in native:
            waiter.release()
        for event in green:
            if in_hub_thread():
                event.set()
            else:
                post_to_hub(event.set)

    def _take(self, size: int) -> bytes | None:
        """Available bytes (None: nothing yet, wait). Called with the lock held."""
        if self._closed:
            return b""
        available = len(self._data) - self._pos
        if available <= 0:
            return b"" if self._eof else None
        n = available if size < 0 else min(size, available)
        out = bytes(self._data[self._pos : self._pos + n])
        self._pos += n
        if self._pos >= _COMPACT_AT:
            del self._data[: self._pos]
            self._pos = 0
        return out

    def read(self, size: int = -1, timeout: float | None = None) -> bytes:
        """Up to ``size`` bytes (all available for a negative size), waiting for at least one;
        ``b""`` at the end. TimeoutError after ``timeout`` seconds without data.

        Args:
            size: the most bytes to return.
            timeout: seconds to wait (None: until data, end of input or close).
        """
        if size == 0:
            return b""
        in_hub = in_hub_thread()
        while True:
            waiter: Any = None
            with self._lock:
                out = self._take(size)
                if out is not None:
                    return out
                if in_hub:
                    waiter = gevent.event.Event()
                    self._green_waiters.append(waiter)
                else:
                    waiter = real_lock()
                    waiter.acquire()
                    self._native_waiters.append(waiter)
            if in_hub:
                with awaiting_threads():  # a native writer wakes us through the hub
                    woke = waiter.wait(timeout)
            else:
                woke = waiter.acquire(True, -1 if timeout is None else timeout)
            if not woke:
                with self._lock:
                    if waiter in self._native_waiters:
                        self._native_waiters.remove(waiter)
                    if waiter in self._green_waiters:
                        self._green_waiters.remove(waiter)
                raise TimeoutError(f"StreamBuffer: no data within {timeout} s")


class _End:
    pass


class _Prefixed:
    """A file-like reader that returns ``head`` before reading on from ``buffer`` (the bytes
    read to sniff the format must still reach libavformat)."""

    def __init__(self, head: bytes, buffer: StreamBuffer) -> None:
        self._head = head
        self._buffer = buffer

    def read(self, size: int = -1) -> bytes:
        if self._head:
            n = len(self._head) if size < 0 else min(size, len(self._head))
            out, self._head = self._head[:n], self._head[n:]
            return out
        return self._buffer.read(size)


def _read_exact(buffer: StreamBuffer, n: int) -> bytes:
    """``n`` bytes, fewer only at the end of input."""
    out = bytearray()
    while len(out) < n:
        chunk = buffer.read(n - len(out))
        if not chunk:
            break
        out += chunk
    return bytes(out)


class _Failure:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


_pool_lock = threading.Lock()
_pool: Any = None


def _decoder_pool() -> Any:
    global _pool
    with _pool_lock:
        if _pool is None:
            from gevent.threadpool import ThreadPool

            # idle threads exit after a while, so a burst of streams leaves nothing behind
            _pool = ThreadPool(_MAX_DECODER_THREADS, idle_task_timeout=30)
        return _pool


class AudioStreamDecoder:
    """Decodes an encoded audio stream pushed in chunks into ``rtc.AudioFrame`` s.

    ``push(data)`` never blocks; ``end_input()`` marks the end; iterating (or ``next(timeout=)``)
    blocks the calling greenlet until a frame is decoded and ends after the last one. Frames are
    int16 at ``sample_rate`` / ``num_channels`` (None keeps the stream's own). Corrupt data
    is skipped with a warning; input that is no audio at all ends iteration with a
    ``ValueError``. One decoder per stream; ``close()`` stops it at any time (also from
    another greenlet: a reader waiting on it ends).

    Args:
        sample_rate: output rate in Hz (None: the stream's).
        num_channels: 1 or 2 (None: the stream's layout).
        format: a container name PyAV knows ("mp3", "ogg", "wav"...) or a MIME type
            ("audio/mpeg"); None probes the data (a hint spares the probe's latency).
    """

    def __init__(
        self,
        *,
        sample_rate: int | None = 48000,
        num_channels: int | None = 1,
        format: str | None = None,
    ) -> None:
        if sample_rate is not None and (not isinstance(sample_rate, int) or sample_rate <= 0):
            raise ValueError(f"sample_rate must be a positive int or None, got {sample_rate!r}")
        if num_channels not in (None, 1, 2):
            raise ValueError(f"num_channels must be 1, 2 or None, got {num_channels!r}")
        self._sample_rate = sample_rate
        self._num_channels = num_channels
        fmt = format.lower() if format else None
        self._format = _MIME_FORMATS.get(fmt, fmt) if fmt else None
        if self._format is not None and "/" in self._format:
            raise ValueError(f"unknown audio MIME type {format!r}")
        self._input = StreamBuffer()
        self._queue: gevent.queue.Queue[Any] = gevent.queue.Queue()
        self._started = False
        self._input_ended = False
        self._closed = False
        self._done = False

    # -- input -------------------------------------------------------------------------------

    def push(self, data: bytes | bytearray | memoryview) -> None:
        """Add encoded bytes (any chunking); RuntimeError after ``end_input()``/``close()``."""
        if self._input_ended or self._closed:
            raise RuntimeError("AudioStreamDecoder: push after end_input() or close()")
        if not data:
            return
        self._input.write(data)
        if not self._started:
            self._started = True
            _decoder_pool().spawn(self._decode_loop)

    def end_input(self) -> None:
        """No more data: the rest is decoded, then iteration ends. Idempotent."""
        if self._input_ended or self._closed:
            return
        self._input_ended = True
        self._input.end_input()
        if not self._started:
            self._queue.put(_End())  # nothing was pushed: no thread will end the stream

    def close(self) -> None:
        """Stop decoding and end iteration (frames not yet read are dropped). Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._input.close()  # the decoding thread reads EOF and ends
        self._queue.put(_End())

    # -- output ------------------------------------------------------------------------------

    def next(self, timeout: float | None = None) -> Any:
        """The next frame; StopIteration at the end; TimeoutError after ``timeout`` s."""
        if self._done or self._closed:
            raise StopIteration
        try:
            with awaiting_threads():  # frames come from a native thread through the hub
                item = self._queue.get(timeout=timeout)
        except gevent.queue.Empty:
            raise TimeoutError(f"AudioStreamDecoder: no frame within {timeout} s") from None
        if self._closed or isinstance(item, _End):
            self._done = True
            raise StopIteration
        if isinstance(item, _Failure):
            self._done = True
            raise item.exc
        return item

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        return self.next()

    def __enter__(self) -> AudioStreamDecoder:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- the decoding thread -----------------------------------------------------------------

    def _emit(self, item: Any) -> None:
        post_to_hub(self._queue.put, item)

    def _decode_loop(self) -> None:
        import av

        container: Any = None
        try:
            head = _read_exact(self._input, 12)
            if head[:4] == b"RIFF" and head[8:12] == b"WAVE" and self._format in (None, "wav"):
                self._decode_wav()
                return
            if not head:
                return  # only end_input() (or close) came
            try:
                container = av.open(
                    _Prefixed(head, self._input),
                    mode="r",
                    format=self._format,
                    # a small probe: the first frame must not wait for megabytes of input
                    # (no "nobuffer" flag: with it libavformat drops the probed bytes)
                    options={"probesize": "4096", "analyzeduration": "0"},
                )
                if not container.streams.audio:
                    raise ValueError("no audio stream in it")
            except Exception as e:
                if not self._closed:
                    self._emit(_Failure(ValueError(
                        f"AudioStreamDecoder: cannot read the input as audio ({e})"
                    )))
                return
            self._decode(container, container.streams.audio[0])
        except ValueError as e:  # the input is not what it claims: the reader's error
            if not self._closed:
                self._emit(_Failure(e))
        except Exception as e:  # a bug here must end the reader's wait, not hang it
            if not self._closed:
                logger.opt(exception=e).error("audio decoder failed")
                self._emit(_Failure(e))
        finally:
            if container is not None:
                try:
                    container.close()
                except Exception:
                    pass
            self._emit(_End())

    def _decode(self, container: Any, stream: Any) -> None:
        import av

        layout = {1: "mono", 2: "stereo"}.get(self._num_channels or 0)
        resampler = av.AudioResampler(format="s16", layout=layout, rate=self._sample_rate)
        errors = 0
        good_since_error = 0
        for packet in container.demux(stream):
            if self._closed:
                return
            try:
                frames = packet.decode()
            except av.error.FFmpegError as e:
                if errors == 0 or good_since_error >= _BURST_RECOVERY_PACKETS:
                    logger.warning("audio decoder: skipping corrupt data ({})", e)
                errors += 1
                good_since_error = 0
                continue
            good_since_error += 1
            for frame in frames:
                for out in resampler.resample(frame):
                    self._emit_frame(out)
        for out in resampler.resample(None):
            self._emit_frame(out)

    def _decode_wav(self) -> None:
        """RIFF chunks: ``fmt `` gives the format, ``data`` the samples, others are skipped."""
        import av

        fmt: tuple[int, int, int] | None = None  # channels, rate, bytes per sample
        while not self._closed:
            header = _read_exact(self._input, 8)
            if len(header) < 8:
                if fmt is None:
                    raise ValueError("AudioStreamDecoder: the WAV data ends before its format")
                return
            chunk_id, size = struct.unpack("<4sI", header)
            if chunk_id == b"fmt ":
                body = _read_exact(self._input, size + (size & 1))
                if len(body) < 16:
                    raise ValueError("AudioStreamDecoder: truncated WAV format chunk")
                tag, channels, rate, _, _, bits = struct.unpack("<HHIIHH", body[:16])
                if tag == _WAVE_FORMAT_EXTENSIBLE and len(body) >= 26:
                    tag = struct.unpack("<H", body[24:26])[0]
                if tag != _WAVE_FORMAT_PCM or bits not in (8, 16, 24, 32) or not channels:
                    raise ValueError(
                        f"AudioStreamDecoder: unsupported WAV format (tag {tag}, {bits} bits); "
                        "integer PCM only"
                    )
                fmt = (channels, rate, bits // 8)
            elif chunk_id == b"data":
                if fmt is None:
                    raise ValueError("AudioStreamDecoder: WAV data before its format chunk")
                self._stream_pcm(fmt, size, av)
                return
            else:
                _read_exact(self._input, size + (size & 1))

    def _stream_pcm(self, fmt: tuple[int, int, int], size: int, av: Any) -> None:
        channels, rate, width = fmt
        frame_bytes = channels * width
        layout = {1: "mono", 2: "stereo"}.get(self._num_channels or 0)
        resampler = av.AudioResampler(format="s16", layout=layout, rate=self._sample_rate)
        in_layout = _LAYOUTS.get(channels)
        if in_layout is None:
            raise ValueError(f"AudioStreamDecoder: WAV with {channels} channels is not supported")
        # streamed WAVs often carry a placeholder size (0 or 0xFFFFFFFF): read to the end then
        remaining = size if 0 < size < 0xFFFFFFFF else None
        pending = b""
        pts = 0
        while not self._closed:
            want = _WAV_BLOCK if remaining is None else min(_WAV_BLOCK, remaining)
            chunk = self._input.read(want) if want > 0 else b""
            if remaining is not None:
                remaining -= len(chunk)
            data = pending + chunk
            usable = len(data) - len(data) % frame_bytes
            pending = data[usable:]
            if usable:
                pcm = _to_int16(data[:usable], width).reshape(1, -1)
                frame = av.AudioFrame.from_ndarray(pcm, format="s16", layout=in_layout)
                frame.sample_rate = rate
                frame.pts = pts
                pts += pcm.size // channels
                for out in resampler.resample(frame):
                    self._emit_frame(out)
            if not chunk:
                break
        for out in resampler.resample(None):
            self._emit_frame(out)

    def _emit_frame(self, frame: Any) -> None:
        channels = frame.layout.nb_channels
        pcm = frame.to_ndarray().reshape(-1)
        if pcm.size == 0:
            return
        self._emit(rtc.AudioFrame(pcm.tobytes(), frame.sample_rate, channels,
                                  pcm.size // channels))
