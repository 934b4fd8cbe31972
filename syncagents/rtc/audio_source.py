"""Blocking ``AudioSource``: ``capture_frame`` blocks the greenlet only while the queue is full.

Frames go into a small hand-off deque that one pump coroutine drains on the bridge loop,
awaiting livekit's own ``capture_frame`` (which paces at real time once the native queue of
``queue_size_ms`` is full). One loop round trip starts a pump for a whole burst of frames, and
the hub is woken only when the producer greenlet actually waits for room: per-frame round
trips cost ~1.6x plain asyncio, batches ~1.1x (NOTES.md).
"""

from __future__ import annotations

import collections
from typing import Any

import gevent.event
from livekit.rtc._ffi_client import FfiClient as _FfiClient
from livekit.rtc._proto import ffi_pb2 as _ffi_pb2

from .. import _bridge
from ._blocking import lk, track_for_exit

# Frames the producer may run ahead of the pump. Unpaced (queue_size_ms=0) sources get a
# batch-sized hand-off so one hub wake-up serves many frames; paced sources keep it tiny so
# backpressure follows the source's own queue (they run at real time anyway).
_BATCH_FRAMES = 32
_PACED_FRAMES = 2


class AudioSource:
    """Blocking ``livekit.rtc.AudioSource``: audio the agent publishes through a local track.

    ``capture_frame(frame)`` blocks the calling greenlet while the queue is full (backpressure: a
    paced source plays at real time); with ``queue_size_ms=0`` it returns as soon as the frame is
    handed over, unpaced. ``clear_queue()`` drops what is not yet played, ``wait_for_playout()``
    blocks until everything captured has played, ``close()`` releases the native source.
    """

    def __init__(self, sample_rate: int, num_channels: int, queue_size_ms: int = 1000) -> None:
        # livekit's constructor only stores the loop we give it: no loop-thread hop needed
        self._lk = lk.AudioSource(sample_rate, num_channels, queue_size_ms, loop=_bridge.loop())
        self._limit = _BATCH_FRAMES if queue_size_ms == 0 else _PACED_FRAMES
        track_for_exit(self)
        self._frames: collections.deque[Any] = collections.deque()
        self._pumping = False
        self._producer_waiting = False
        self._space = gevent.event.Event()
        self._error: BaseException | None = None
        self._closed = False
        self._clearing = False
        self._drained: list[Any] = []  # loop-side futures resolved when the pump goes idle
        self._generation = 0  # bumped by clear_queue: frames of older generations are dropped

    @property
    def sample_rate(self) -> int:
        """The rate, in Hz, every captured frame must have."""
        return int(self._lk.sample_rate)

    @property
    def num_channels(self) -> int:
        """The channel count every captured frame must have."""
        return int(self._lk.num_channels)

    @property
    def queued_duration(self) -> float:
        """Seconds of audio captured but not yet played out."""
        pending = sum(f.samples_per_channel for _, f in list(self._frames)) / self.sample_rate
        return pending + (0.0 if self._clearing else float(self._lk.queued_duration))

    # -- greenlet side ------------------------------------------------------------------------
    def capture_frame(self, frame: Any, timeout: float | None = None) -> None:
        """Queue ``frame`` for playout; blocks while the queue is full (backpressure)."""
        if self._error is not None:
            err, self._error = self._error, None
            raise err
        if self._closed:
            raise RuntimeError("AudioSource is closed")
        if frame.sample_rate != self.sample_rate or frame.num_channels != self.num_channels:
            raise ValueError(
                f"frame is {frame.sample_rate} Hz x{frame.num_channels}, the source expects "
                f"{self.sample_rate} Hz x{self.num_channels}: resample first (rtc.AudioResampler)"
            )
        while len(self._frames) >= self._limit:
            self._space.clear()
            self._producer_waiting = True
            if len(self._frames) < self._limit:
                self._producer_waiting = False
                break
            if not _bridge.wait_event(self._space, timeout):
                self._producer_waiting = False
                raise TimeoutError(f"audio source queue still full after {timeout} s")
            if self._closed:
                raise RuntimeError("AudioSource is closed")
        self._frames.append((self._generation, frame))
        if not self._pumping:
            self._pumping = True
            _bridge.submit(self._pump())

    def clear_queue(self) -> None:
        """Drop every frame not yet played (ours and livekit's native queue); never blocks.

        Interruptions call this: it must not wait behind a busy loop thread. The native
        buffer is cleared here with the (thread-agnostic) FFI request; livekit's Python-side
        playout bookkeeping is reset on the loop. A capture in flight at this moment is
        cleared again by the pump when it lands.
        """
        self._generation += 1
        self._frames.clear()
        self._wake_producer()
        self._clear_native()
        self._clearing = True  # until the loop resets livekit's bookkeeping
        _bridge.call_soon(self._after_clear)

    def _after_clear(self) -> None:  # loop thread
        self._lk._release_waiter()
        self._clearing = False

    def _clear_native(self) -> None:
        # the body of livekit's AudioSource.clear_queue minus its asyncio part
        req = _ffi_pb2.FfiRequest()
        req.clear_audio_buffer.source_handle = self._lk._ffi_handle.handle
        _FfiClient.instance.request(req)

    def wait_for_playout(self, timeout: float | None = None) -> None:
        """Block until everything captured so far has been played out."""
        _bridge.run(self._playout(), timeout=timeout)

    def close(self) -> None:
        """Drop what is queued, let an in-flight capture finish, release the native source."""
        if self._closed:
            return
        self._closed = True
        self._frames.clear()
        self._wake_producer()
        _bridge.run(self._aclose_for_exit(), timeout=5)

    # -- loop side ----------------------------------------------------------------------------
    async def _aclose_for_exit(self) -> None:
        self._closed = True
        self._frames.clear()
        if self._pumping:  # a capture in flight must complete before the handle goes away
            drained = _bridge.loop().create_future()
            self._drained.append(drained)
            await drained
        await self._lk.aclose()

    async def _pump(self) -> None:
        frames = self._frames
        while True:
            while frames:
                generation, frame = frames.popleft()
                if self._producer_waiting and len(frames) <= self._limit // 2:
                    self._producer_waiting = False
                    _bridge.post_to_hub(self._space.set)
                if generation != self._generation or self._closed:
                    continue
                try:
                    await self._lk.capture_frame(frame)
                except Exception as exc:  # surfaced to the producer on its next call
                    self._error = exc
                if generation != self._generation and not self._closed:
                    self._clear_native()  # cleared while this frame was in flight
            self._pumping = False
            if not frames:  # the producer checks _pumping after appending: no frame is lost
                break
            self._pumping = True
        if self._producer_waiting:
            self._producer_waiting = False
            _bridge.post_to_hub(self._space.set)
        drained, self._drained = self._drained, []
        for fut in drained:
            if not fut.done():
                fut.set_result(None)

    async def _playout(self) -> None:
        if self._pumping or self._frames:  # let the pump hand everything to livekit first
            drained = _bridge.loop().create_future()
            self._drained.append(drained)
            await drained
        await self._lk.wait_for_playout()

    def _wake_producer(self) -> None:
        self._producer_waiting = False
        self._space.set()

