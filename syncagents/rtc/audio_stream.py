"""Blocking ``AudioStream``: ``for ev in rtc.AudioStream(track):`` in any greenlet."""

from __future__ import annotations

from typing import Any

from .. import _bridge
from ._blocking import BlockingStream, lk, track_for_exit, unwrap

# Frames (10 ms each) buffered between the loop and the reading greenlet before the pump
# stops reading: ~0.64 s, enough to ride out a busy hub without growing without bound.
_BUFFER_FRAMES = 64


class AudioStream(BlockingStream):
    """Blocking iterator of ``AudioFrameEvent`` from an audio track.

    ``close()`` (from any greenlet) ends a loop waiting on the stream; also a context manager.
    """

    def __init__(
        self,
        track: Any,
        sample_rate: int | None = None,
        num_channels: int | None = None,
        *,
        buffer_frames: int = _BUFFER_FRAMES,
        **kwargs: Any,
    ) -> None:
        self._track = unwrap(track)
        self._sample_rate = sample_rate or 48000
        self._num_channels = num_channels or 1
        self._kwargs = kwargs
        self._lk: Any = None
        self._it: _bridge.BlockingIterator[Any] = _bridge.BlockingIterator(
            self._open, maxsize=buffer_frames, on_close=self._aclose
        )
        track_for_exit(self)

    @classmethod
    def from_participant(
        cls,
        participant: Any,
        track_source: int,
        sample_rate: int | None = None,
        num_channels: int | None = None,
    ) -> AudioStream:
        """The participant's track of ``track_source`` (e.g. ``TrackSource.SOURCE_MICROPHONE``),
        followed across republishing."""
        return cls(
            None,
            sample_rate,
            num_channels,
            participant=unwrap(participant),
            track_source=track_source,
        )

    # loop thread: livekit's AudioStream starts a task on the running loop in its constructor
    def _open(self) -> Any:
        self._lk = lk.AudioStream(
            self._track,
            loop=_bridge.loop(),
            sample_rate=self._sample_rate,
            num_channels=self._num_channels,
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

    @property
    def sample_rate(self) -> int:
        """The rate of the frames the stream yields, in Hz (48000 unless given)."""
        return self._sample_rate

    @property
    def num_channels(self) -> int:
        """The channel count of the frames the stream yields (1 unless given)."""
        return self._num_channels

