"""Microphone and speaker for ``syncagents console --mic/--speaker`` (optional ``sounddevice``).

PortAudio calls our callbacks on its own native thread. They only touch a deque (atomic
under the GIL) and hand work to the hub through ``_bridge.post_to_hub``: no gevent object is
used from that thread.
"""

from __future__ import annotations

import collections
from typing import Any

import gevent
import gevent.queue

from .. import _bridge, rtc
from ..testing.local_room import USER_RATE

FRAME = USER_RATE // 100  # 10 ms


def _sounddevice() -> Any:
    try:
        import sounddevice
    except (ImportError, OSError) as exc:  # OSError: the PortAudio library is missing
        raise RuntimeError(
            "--mic/--speaker need the 'mic' extra and PortAudio: pip install 'syncagents[mic]' "
            f"({exc})"
        ) from None
    return sounddevice


class Microphone:
    """Captures the default input device into ``source`` (48 kHz mono 10 ms frames)."""

    def __init__(self, source: rtc.AudioSource) -> None:
        self._source = source
        self._frames: gevent.queue.Queue[bytes] = gevent.queue.Queue(maxsize=100)
        sd = _sounddevice()
        self._stream = sd.RawInputStream(
            samplerate=USER_RATE, channels=1, dtype="int16", blocksize=FRAME,
            callback=self._on_audio,
        )

    def _on_audio(self, data: Any, frames: int, _time: Any, _status: Any) -> None:
        _bridge.post_to_hub(self._put, bytes(data))  # PortAudio thread: copy and hand over

    def _put(self, data: bytes) -> None:
        if not self._frames.full():  # a stalled consumer drops audio rather than grow memory
            self._frames.put_nowait(data)

    def run(self) -> None:
        """Capture until killed: start the device and push each 10 ms frame into the source.

        Blocks the calling greenlet (run it in its own, and kill that greenlet to stop); the device
        stream is stopped and closed on the way out. Frames arriving while 100 are already waiting
        are dropped.
        """
        self._stream.start()
        try:
            while True:
                data = self._frames.get()
                n = len(data) // 2
                self._source.capture_frame(rtc.AudioFrame(data, USER_RATE, 1, n))
        finally:
            self._stream.stop()
            self._stream.close()


class Speaker:
    """Plays frames (mono int16 at ``rate``) on the default output device."""

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self._pending: collections.deque[bytes] = collections.deque()
        self._buffer = b""
        sd = _sounddevice()
        self._stream = sd.RawOutputStream(
            samplerate=rate, channels=1, dtype="int16", callback=self._on_need
        )
        self._stream.start()

    def write(self, frame: Any) -> None:
        """Queue ``frame`` (mono int16 at ``rate``) for playback; never blocks.

        The frame's format is not checked; the device plays silence whenever nothing is queued.
        """
        self._pending.append(bytes(frame.data))

    def _on_need(self, out: Any, frames: int, _time: Any, _status: Any) -> None:
        need = frames * 2  # PortAudio thread: only the deque and local bytes here
        buf = self._buffer
        while len(buf) < need and self._pending:
            buf += self._pending.popleft()
        chunk, self._buffer = buf[:need], buf[need:]
        out[: len(chunk)] = chunk
        out[len(chunk) :] = b"\0" * (need - len(chunk))

    def close(self) -> None:
        """Stop and close the output device stream (queued audio is not played)."""
        self._stream.stop()
        self._stream.close()
