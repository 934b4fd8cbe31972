"""Local tracks: thin wrappers so facade sources can be passed where livekit wants its own."""

from __future__ import annotations

import weakref
from typing import Any

from ._blocking import lk, unwrap

# track -> the sample rate of the source feeding it (livekit's track does not expose it; a
# recorder of the agent's voice needs it to write the audio at its own rate)
_source_rates: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()


class LocalAudioTrack:
    """Factory mirroring ``livekit.rtc.LocalAudioTrack.create_audio_track``."""

    @staticmethod
    def create_audio_track(name: str, source: Any) -> Any:
        """A ``livekit.rtc.LocalAudioTrack`` fed by ``source`` (facade or livekit source)."""
        track = lk.LocalAudioTrack.create_audio_track(name, unwrap(source))
        _source_rates[track] = int(source.sample_rate)
        return track


def source_rate_of(track: Any) -> int | None:
    """The sample rate of the source behind a local audio track made here, if known."""
    try:
        return _source_rates.get(track)
    except TypeError:
        return None
