"""Tracks: facades over livekit's local and remote audio/video tracks (``get_stats`` blocks).

Local tracks are made here (``create_audio_track`` / ``create_video_track``) and are the same
objects that ``publication.track`` and room events hand back later; remote tracks come from
room events and publications.
"""

from __future__ import annotations

import weakref
from typing import Any, Union

from .. import _bridge
from . import _registry
from ._blocking import lk, mirror, unwrap

# livekit track -> the sample rate of the source feeding it (livekit's track does not expose it;
# a recorder of the agent's voice needs it to write the audio at its own rate). Keyed by the
# livekit object so it survives facades coming and going.
_source_rates: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()


class Track:
    """A livekit track: ``sid``, ``name``, ``kind``, ``stream_state``, ``muted``, and
    ``get_stats()``. Not created directly: use the factories of the local track classes."""

    def __init__(self, lk_track: Any) -> None:
        self._lk = lk_track

    sid = mirror("sid", "The track's server id ('' until published).")
    name = mirror("name", "The track's name.")
    kind = mirror("kind", "``TrackKind.KIND_AUDIO`` or ``TrackKind.KIND_VIDEO``.")
    stream_state = mirror("stream_state", "``StreamState`` of a remote track.")
    muted = mirror("muted", "Whether the track is muted.")

    def get_stats(self, timeout: float | None = None) -> list[Any]:
        """The track's WebRTC statistics (``rtc.stats.RtcStats`` messages); blocking."""
        return list(_bridge.run(self._lk.get_stats(), timeout=timeout))

    def __repr__(self) -> str:
        return f"rtc.{type(self).__name__}(sid={self.sid!r}, name={self.name!r})"


class _LocalTrack(Track):
    def mute(self) -> None:
        """Stop sending media (a synchronous request to livekit's core)."""
        self._lk.mute()

    def unmute(self) -> None:
        """Resume sending media."""
        self._lk.unmute()


class LocalAudioTrack(_LocalTrack):
    """An audio track fed by an ``rtc.AudioSource``, ready to publish."""

    @staticmethod
    def create_audio_track(name: str, source: Any) -> LocalAudioTrack:
        """A track named ``name`` fed by ``source`` (an ``rtc.AudioSource``)."""
        lk_source = unwrap(source)
        if not isinstance(lk_source, (lk.AudioSource, lk.PlatformAudioSource)):
            raise TypeError(
                f"create_audio_track needs an rtc.AudioSource, got {type(source).__name__}"
            )
        lk_track = lk.LocalAudioTrack.create_audio_track(name, lk_source)
        track = LocalAudioTrack(lk_track)
        _registry.adopt(lk_track, track)
        rate = getattr(lk_source, "sample_rate", None)
        if rate:
            _source_rates[lk_track] = int(rate)
        return track


class LocalVideoTrack(_LocalTrack):
    """A video track fed by an ``rtc.VideoSource``, ready to publish."""

    @staticmethod
    def create_video_track(name: str, source: Any) -> LocalVideoTrack:
        """A track named ``name`` fed by ``source`` (an ``rtc.VideoSource``)."""
        lk_source = unwrap(source)
        if not isinstance(lk_source, (lk.VideoSource, lk.EncodedVideoSource)):
            raise TypeError(
                f"create_video_track needs an rtc.VideoSource, got {type(source).__name__}"
            )
        lk_track = lk.LocalVideoTrack.create_video_track(name, lk_source)
        track = LocalVideoTrack(lk_track)
        _registry.adopt(lk_track, track)
        return track


class RemoteAudioTrack(Track):
    """A remote participant's audio track (read it with ``rtc.AudioStream``)."""


class RemoteVideoTrack(Track):
    """A remote participant's video track (read it with ``rtc.VideoStream``)."""


LocalTrack = Union[LocalAudioTrack, LocalVideoTrack]
RemoteTrack = Union[RemoteAudioTrack, RemoteVideoTrack]
AudioTrack = Union[LocalAudioTrack, RemoteAudioTrack]
VideoTrack = Union[LocalVideoTrack, RemoteVideoTrack]

_registry.register_type(lk.LocalAudioTrack, LocalAudioTrack)
_registry.register_type(lk.LocalVideoTrack, LocalVideoTrack)
_registry.register_type(lk.RemoteAudioTrack, RemoteAudioTrack)
_registry.register_type(lk.RemoteVideoTrack, RemoteVideoTrack)


def source_rate_of(track: Any) -> int | None:
    """The sample rate of the source behind a local audio track made here, if known."""
    try:
        return _source_rates.get(unwrap(track))
    except TypeError:
        return None
