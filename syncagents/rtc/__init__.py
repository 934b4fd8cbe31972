"""``syncagents.rtc``: ``livekit.rtc`` in blocking style.

Same names as ``livekit.rtc``. Objects that do I/O (``Room``, ``AudioSource``, ``AudioStream``,
``LocalParticipant``) are blocking facades run through the bridge; plain data classes and
enums are livekit's own, re-exported unchanged.
"""

from __future__ import annotations

from typing import Any

from ._blocking import lk
from .audio_source import AudioSource
from .audio_stream import AudioStream
from .participant import LocalParticipant
from .room import Room
from .track import LocalAudioTrack

AudioFrame = lk.AudioFrame
AudioFrameEvent = lk.AudioFrameEvent
AudioResamplerQuality = lk.AudioResamplerQuality
TrackKind = lk.TrackKind
TrackSource = lk.TrackSource
TrackPublishOptions = lk.TrackPublishOptions
ConnectionState = lk.ConnectionState
DataPacketKind = lk.DataPacketKind
DataPacket = lk.DataPacket
DisconnectReason = lk.DisconnectReason
ConnectError = lk.ConnectError
RoomOptions = lk.RoomOptions
RemoteParticipant = lk.RemoteParticipant
Participant = lk.Participant
Track = lk.Track
RemoteAudioTrack = lk.RemoteAudioTrack
RemoteTrackPublication = lk.RemoteTrackPublication
LocalTrackPublication = lk.LocalTrackPublication
TrackPublication = lk.TrackPublication
Transcription = lk.Transcription
TranscriptionSegment = lk.TranscriptionSegment
ParticipantKind = lk.ParticipantKind


class AudioResampler(lk.AudioResampler):  # type: ignore[misc,name-defined]
    """``livekit.rtc.AudioResampler`` with ``num_channels`` also positional (API.md).

    Synchronous FFI calls, cheap per frame: safe to call from any greenlet.
    """

    def __init__(
        self, input_rate: int, output_rate: int, num_channels: int = 1, **kwargs: Any
    ) -> None:
        super().__init__(input_rate, output_rate, num_channels=num_channels, **kwargs)


__all__ = [
    "AudioFrame",
    "AudioFrameEvent",
    "AudioResampler",
    "AudioResamplerQuality",
    "AudioSource",
    "AudioStream",
    "ConnectError",
    "ConnectionState",
    "DataPacket",
    "DataPacketKind",
    "DisconnectReason",
    "LocalAudioTrack",
    "LocalParticipant",
    "LocalTrackPublication",
    "Participant",
    "ParticipantKind",
    "RemoteAudioTrack",
    "RemoteParticipant",
    "RemoteTrackPublication",
    "Room",
    "RoomOptions",
    "Track",
    "TrackKind",
    "TrackPublication",
    "TrackPublishOptions",
    "TrackSource",
    "Transcription",
    "TranscriptionSegment",
]
