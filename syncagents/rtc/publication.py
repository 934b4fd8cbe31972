"""Track publications: facades over livekit's local and remote ``TrackPublication``.

``publication.track`` is the facade track (the same object room events hand out);
``RemoteTrackPublication.set_subscribed`` and ``LocalTrackPublication.wait_for_subscription``
are the blocking counterparts of livekit's.
"""

from __future__ import annotations

from typing import Any

from .. import _bridge
from . import _registry
from ._blocking import lk, mirror


class TrackPublication:
    """What a participant published: ``sid``, ``name``, ``kind``, ``source``, ``muted``,
    ``mime_type``, ``width``/``height`` (video), ``simulcasted``, ``encryption_type``, and the
    ``track`` itself once it is available (``None`` for a remote track not subscribed)."""

    def __init__(self, lk_publication: Any) -> None:
        self._lk = lk_publication

    sid = mirror("sid", "The track's server id.")
    name = mirror("name", "The track's name.")
    kind = mirror("kind", "``TrackKind.KIND_AUDIO`` or ``TrackKind.KIND_VIDEO``.")
    source = mirror("source", "``TrackSource`` (microphone, camera, screen share, ...).")
    muted = mirror("muted", "Whether the publisher muted the track.")
    mime_type = mirror("mime_type", "The codec's mime type, e.g. ``audio/opus``.")
    width = mirror("width", "Width of a video track, in pixels.")
    height = mirror("height", "Height of a video track, in pixels.")
    simulcasted = mirror("simulcasted", "Whether a video track is sent in several layers.")
    encryption_type = mirror("encryption_type", "``EncryptionType`` of the track's media.")
    audio_features = mirror("audio_features", "``AudioTrackFeature`` values of an audio track.")

    @property
    def track(self) -> Any:
        """The published track's facade, or ``None``."""
        return _registry.facade(self._lk.track)

    def __repr__(self) -> str:
        return f"rtc.{type(self).__name__}(sid={self.sid!r}, name={self.name!r})"


class LocalTrackPublication(TrackPublication):
    """A track the local participant published (``local_participant.publish_track``)."""

    def wait_for_subscription(self, timeout: float | None = None) -> None:
        """Block until a remote participant subscribed to this track."""
        _bridge.run(self._lk.wait_for_subscription(), timeout=timeout)


class RemoteTrackPublication(TrackPublication):
    """A track a remote participant published; subscribe to it with ``set_subscribed``."""

    @property
    def subscribed(self) -> bool:
        """Whether this participant is subscribed to the track."""
        return bool(self._lk.subscribed)

    def set_subscribed(self, subscribed: bool) -> None:
        """Subscribe to (``True``) or unsubscribe from the track; ``track_subscribed`` /
        ``track_unsubscribed`` follow as room events. Returns at once."""
        if not isinstance(subscribed, bool):
            raise TypeError(f"set_subscribed takes a bool, got {type(subscribed).__name__}")
        self._lk.set_subscribed(subscribed)  # a synchronous request to livekit's core

    def set_video_quality(self, quality: int) -> None:
        """Ask for one simulcast layer of a video track (``rtc.VideoQuality``)."""
        self._lk.set_video_quality(quality)


_registry.register_type(lk.LocalTrackPublication, LocalTrackPublication)
_registry.register_type(lk.RemoteTrackPublication, RemoteTrackPublication)
