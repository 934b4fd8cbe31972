"""Video: ``VideoSource`` to publish frames, ``VideoStream`` to read a track's frames.

``VideoSource.capture_frame`` is one synchronous request to livekit's core (it copies the
frame), so it is called straight from the greenlet; WebRTC drops frames under congestion
instead of pushing back, so there is no queue to block on. ``VideoStream`` mirrors
``rtc.AudioStream``: a plain blocking iterator of ``VideoFrameEvent``.
"""

from __future__ import annotations

from typing import Any

from .. import _bridge
from ._blocking import BlockingStream, lk, track_for_exit, unwrap

# Frames buffered between the loop and the reading greenlet before the pump stops reading
# (livekit's own queue, ``capacity``, holds the rest): half a second at 30 fps.
_BUFFER_FRAMES = 16


class VideoSource:
    """A source of video frames for ``rtc.LocalVideoTrack.create_video_track``."""

    def __init__(self, width: int, height: int, *, is_screencast: bool = False) -> None:
        for label, value in (("width", width), ("height", height)):
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"VideoSource {label} must be a positive int, got {value!r}")
        self._width = width
        self._height = height
        self._closed = False
        self._lk = lk.VideoSource(width, height, is_screencast=is_screencast)

    @property
    def width(self) -> int:
        """The width the source was created with."""
        return self._width

    @property
    def height(self) -> int:
        """The height the source was created with."""
        return self._height

    def capture_frame(
        self,
        frame: Any,
        *,
        timestamp_us: int = 0,
        rotation: int = lk.VideoRotation.VIDEO_ROTATION_0,
        metadata: Any = None,
    ) -> None:
        """Send one ``rtc.VideoFrame`` (any buffer type; livekit converts it)."""
        if not isinstance(frame, lk.VideoFrame):
            raise TypeError(f"capture_frame takes an rtc.VideoFrame, got {type(frame).__name__}")
        if self._closed:
            raise RuntimeError("VideoSource is closed")
        self._lk.capture_frame(frame, timestamp_us=timestamp_us, rotation=rotation,
                               metadata=metadata)

    def close(self) -> None:
        """Release the native source (tracks made from it stop sending)."""
        if not self._closed:
            self._closed = True
            self._lk._ffi_handle.dispose()


class VideoStream(BlockingStream):
    """Blocking iterator of ``VideoFrameEvent`` (``frame``, ``timestamp_us``, ``rotation``)
    from a video track; ``format`` (an ``rtc.VideoBufferType``) converts every frame.

    ``close()`` (from any greenlet) ends a loop waiting on the stream; also a context manager.
    """

    def __init__(
        self,
        track: Any,
        format: int | None = None,
        *,
        capacity: int = 0,
        buffer_frames: int = _BUFFER_FRAMES,
        **kwargs: Any,
    ) -> None:
        self._track = unwrap(track)
        kind = getattr(self._track, "kind", None)
        if kind is not None and int(kind) != int(lk.TrackKind.KIND_VIDEO):
            raise ValueError("VideoStream needs a video track, got an audio track")
        self._format = format
        self._capacity = capacity
        self._kwargs = kwargs
        self._lk: Any = None
        self._it: _bridge.BlockingIterator[Any] = _bridge.BlockingIterator(
            self._open, maxsize=buffer_frames, on_close=self._aclose
        )
        track_for_exit(self)

    @classmethod
    def from_participant(
        cls, participant: Any, track_source: int, format: int | None = None
    ) -> VideoStream:
        """The participant's video of ``track_source`` (e.g. ``TrackSource.SOURCE_CAMERA``),
        followed across republishing."""
        return cls(None, format, participant=unwrap(participant), track_source=track_source)

    # loop thread: livekit's VideoStream starts a task on the running loop in its constructor
    def _open(self) -> Any:
        self._lk = lk.VideoStream(
            self._track,
            loop=_bridge.loop(),
            capacity=self._capacity,
            format=self._format,
            **self._kwargs,
        )
        return self._lk

    async def _aclose(self) -> None:
        lk_stream, self._lk = self._lk, None
        if lk_stream is not None:
            await lk_stream.aclose()

    async def _aclose_for_exit(self) -> None:
        self._it.close()
        await self._aclose()

