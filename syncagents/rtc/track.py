"""Local tracks: thin wrappers so facade sources can be passed where livekit wants its own."""

from __future__ import annotations

from typing import Any

from ._blocking import lk, unwrap


class LocalAudioTrack:
    """Factory mirroring ``livekit.rtc.LocalAudioTrack.create_audio_track``."""

    @staticmethod
    def create_audio_track(name: str, source: Any) -> Any:
        """A ``livekit.rtc.LocalAudioTrack`` fed by ``source`` (facade or livekit source)."""
        return lk.LocalAudioTrack.create_audio_track(name, unwrap(source))
