"""Data tracks: facades over livekit's ``LocalDataTrack`` / ``RemoteDataTrack``.

``RemoteDataTrack.subscribe()`` returns a plain blocking iterator of ``DataTrackFrame``
(livekit's is async, and binds to the running loop when created, so it is made on the bridge
loop); ``local_participant.publish_data_track(name=)`` gives a ``LocalDataTrack`` whose
``unpublish`` blocks.
"""

from __future__ import annotations

from typing import Any

from .. import _bridge
from . import _registry
from ._blocking import BlockingStream, lk

DataTrackFrame = lk.DataTrackFrame
DataTrackInfo = lk.DataTrackInfo
PushFrameError = lk.PushFrameError
SubscribeDataTrackError = lk.SubscribeDataTrackError

_BUFFER_FRAMES = 64


class LocalDataTrack:
    """A data track the local participant published: ``try_push(frame)`` sends one
    ``rtc.DataTrackFrame`` (``PushFrameError`` when it cannot)."""

    def __init__(self, lk_track: Any) -> None:
        self._lk = lk_track

    @property
    def info(self) -> Any:
        """``DataTrackInfo`` (``sid``, ``name``, ``uses_e2ee``)."""
        return self._lk.info

    def try_push(self, frame: Any) -> None:
        """Send ``frame`` to the track's subscribers (a synchronous request)."""
        if not isinstance(frame, lk.DataTrackFrame):
            raise TypeError(f"try_push takes an rtc.DataTrackFrame, got {type(frame).__name__}")
        self._lk.try_push(frame)

    def is_published(self) -> bool:
        """Whether the track is still published."""
        return bool(self._lk.is_published())

    def unpublish(self, timeout: float | None = None) -> None:
        """Unpublish the track."""
        _bridge.run(self._lk.unpublish(), timeout=timeout)

    def __repr__(self) -> str:
        return f"rtc.LocalDataTrack(sid={self.info.sid!r}, name={self.info.name!r})"


class RemoteDataTrack:
    """A data track another participant published (``data_track_published`` event)."""

    def __init__(self, lk_track: Any) -> None:
        self._lk = lk_track

    @property
    def info(self) -> Any:
        """``DataTrackInfo`` (``sid``, ``name``, ``uses_e2ee``)."""
        return self._lk.info

    @property
    def publisher_identity(self) -> str:
        """Identity of the participant who published the track."""
        return str(self._lk.publisher_identity)

    def subscribe(self, *, buffer_size: int | None = None) -> DataTrackStream:
        """Receive the track's frames: a blocking iterator of ``rtc.DataTrackFrame``."""
        return DataTrackStream(self._lk, buffer_size)

    def is_published(self) -> bool:
        """Whether the track is still published."""
        return bool(self._lk.is_published())

    def set_pipeline_options(self, *, max_partial_frames: int | None = None) -> None:
        """See ``livekit.rtc.RemoteDataTrack.set_pipeline_options``."""
        self._lk.set_pipeline_options(max_partial_frames=max_partial_frames)

    def __repr__(self) -> str:
        return (
            f"rtc.RemoteDataTrack(sid={self.info.sid!r}, name={self.info.name!r}, "
            f"publisher_identity={self.publisher_identity!r})"
        )


def _closer(holder: list[Any]) -> Any:
    async def close() -> None:
        for stream in holder:
            stream.close()

    return close


class DataTrackStream(BlockingStream):
    """Frames of a subscribed data track; ``close()`` (any greenlet) unsubscribes and ends a
    loop waiting on it; also a context manager. ``rtc.SubscribeDataTrackError`` at the end if
    the subscription failed."""

    def __init__(self, lk_track: Any, buffer_size: int | None) -> None:
        holder: list[Any] = []

        def open_stream() -> Any:  # loop thread: livekit's stream binds the running loop
            holder.append(lk_track.subscribe(buffer_size=buffer_size))
            return holder[0]

        self._it: _bridge.BlockingIterator[Any] = _bridge.BlockingIterator(
            open_stream, maxsize=_BUFFER_FRAMES, on_close=_closer(holder)
        )



_registry.register_type(lk.LocalDataTrack, LocalDataTrack)
_registry.register_type(lk.RemoteDataTrack, RemoteDataTrack)
