"""Blocking ``LocalParticipant``: every publish call blocks only the calling greenlet."""

from __future__ import annotations

from typing import Any

from .. import _bridge
from ._blocking import BlockingProxy, lk, unwrap


class LocalParticipant(BlockingProxy):
    """Wraps ``livekit.rtc.LocalParticipant``; unknown attributes pass through (async ones
    become blocking with an optional ``timeout=``)."""

    def __init__(self, lk_participant: Any) -> None:
        self._lk = lk_participant

    @property
    def identity(self) -> str:
        return str(self._lk.identity)

    @property
    def sid(self) -> str:
        return str(self._lk.sid)

    @property
    def name(self) -> str:
        return str(self._lk.name)

    @property
    def track_publications(self) -> Any:
        return self._lk.track_publications

    def publish_track(
        self, track: Any, options: Any = None, *, timeout: float | None = None
    ) -> Any:
        """Publish a local track; returns the ``LocalTrackPublication``."""
        opts = options if options is not None else lk.TrackPublishOptions()
        return _bridge.run(self._lk.publish_track(unwrap(track), opts), timeout=timeout)

    def unpublish_track(self, track_sid: str, *, timeout: float | None = None) -> None:
        _bridge.run(self._lk.unpublish_track(track_sid), timeout=timeout)

    def publish_data(
        self,
        payload: bytes | str,
        *,
        reliable: bool = True,
        destination_identities: list[str] | None = None,
        topic: str = "",
        timeout: float | None = None,
    ) -> None:
        _bridge.run(
            self._lk.publish_data(
                payload,
                reliable=reliable,
                destination_identities=destination_identities or [],
                topic=topic,
            ),
            timeout=timeout,
        )

    def publish_transcription(self, transcription: Any, *, timeout: float | None = None) -> None:
        _bridge.run(self._lk.publish_transcription(transcription), timeout=timeout)

    def set_metadata(self, metadata: str, *, timeout: float | None = None) -> None:
        _bridge.run(self._lk.set_metadata(metadata), timeout=timeout)

    def set_attributes(self, attributes: dict[str, str], *, timeout: float | None = None) -> None:
        _bridge.run(self._lk.set_attributes(attributes), timeout=timeout)

    def __repr__(self) -> str:
        return f"LocalParticipant(identity={self.identity!r})"
