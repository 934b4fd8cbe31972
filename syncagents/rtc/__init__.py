"""``syncagents.rtc``: ``livekit.rtc`` in blocking style.

Same names as ``livekit.rtc``. Objects that do I/O or that livekit hands out from a room (``Room``,
participants, publications, tracks, ``AudioSource``/``AudioStream``, ``VideoSource``/
``VideoStream``, data stream readers and writers, data tracks) are blocking facades run through
the bridge: nothing here is ``async``, and room events, ``remote_participants``,
``track_publications`` and ``publication.track`` give facades, one per livekit object. Plain data
classes and enums are livekit's own, re-exported unchanged.
"""

from __future__ import annotations

from typing import Any

from ._blocking import lk
from .audio_source import AudioSource
from .audio_stream import AudioStream
from .data_streams import (
    ByteStreamInfo,
    ByteStreamReader,
    ByteStreamWriter,
    StreamError,
    TextStreamInfo,
    TextStreamReader,
    TextStreamWriter,
)
from .data_track import (
    DataTrackFrame,
    DataTrackInfo,
    DataTrackStream,
    LocalDataTrack,
    PushFrameError,
    RemoteDataTrack,
    SubscribeDataTrackError,
)
from .participant import LocalParticipant, Participant
from .publication import LocalTrackPublication, RemoteTrackPublication, TrackPublication
from .remote import RemoteParticipant
from .room import Room
from .rpc import RpcError, RpcInvocationData
from .track import (
    AudioTrack,
    LocalAudioTrack,
    LocalTrack,
    LocalVideoTrack,
    RemoteAudioTrack,
    RemoteTrack,
    RemoteVideoTrack,
    Track,
    VideoTrack,
)
from .video import VideoSource, VideoStream

# plain data classes, enums and errors: livekit's own
AudioFrame = lk.AudioFrame
AudioFrameEvent = lk.AudioFrameEvent
AudioResamplerQuality = lk.AudioResamplerQuality
ConnectError = lk.ConnectError
ConnectionQuality = lk.ConnectionQuality
ConnectionState = lk.ConnectionState
DataPacket = lk.DataPacket
DataPacketKind = lk.DataPacketKind
DataStreamOptions = lk.DataStreamOptions
DegradationPreference = lk.DegradationPreference
DisconnectReason = lk.DisconnectReason
EncryptionState = lk.EncryptionState
EncryptionType = lk.EncryptionType
FrameMetadata = lk.FrameMetadata
IceServer = lk.IceServer
IceTransportType = lk.IceTransportType
ContinualGatheringPolicy = lk.ContinualGatheringPolicy
ParticipantKind = lk.ParticipantKind
ParticipantKindDetail = lk.ParticipantKindDetail
ParticipantState = lk.ParticipantState
ParticipantTrackPermission = lk.ParticipantTrackPermission
RoomOptions = lk.RoomOptions
RtcConfiguration = lk.RtcConfiguration
RtcStats = lk.RtcStats
SipDTMF = lk.SipDTMF
StreamState = lk.StreamState
TrackKind = lk.TrackKind
TrackPublishOptions = lk.TrackPublishOptions
TrackSource = lk.TrackSource
Transcription = lk.Transcription
TranscriptionSegment = lk.TranscriptionSegment
VideoBufferType = lk.VideoBufferType
VideoCodec = lk.VideoCodec
VideoEncoding = lk.VideoEncoding
VideoFrame = lk.VideoFrame
VideoFrameEvent = lk.VideoFrameEvent
VideoQuality = lk.VideoQuality
VideoRotation = lk.VideoRotation
combine_audio_frames = lk.combine_audio_frames
stats = lk.stats


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
    "AudioTrack",
    "ByteStreamInfo",
    "ByteStreamReader",
    "ByteStreamWriter",
    "ConnectError",
    "ConnectionQuality",
    "ConnectionState",
    "ContinualGatheringPolicy",
    "DataPacket",
    "DataPacketKind",
    "DataStreamOptions",
    "DataTrackFrame",
    "DataTrackInfo",
    "DataTrackStream",
    "DegradationPreference",
    "DisconnectReason",
    "EncryptionState",
    "EncryptionType",
    "FrameMetadata",
    "IceServer",
    "IceTransportType",
    "LocalAudioTrack",
    "LocalDataTrack",
    "LocalParticipant",
    "LocalTrack",
    "LocalTrackPublication",
    "LocalVideoTrack",
    "Participant",
    "ParticipantKind",
    "ParticipantKindDetail",
    "ParticipantState",
    "ParticipantTrackPermission",
    "PushFrameError",
    "RemoteAudioTrack",
    "RemoteDataTrack",
    "RemoteParticipant",
    "RemoteTrack",
    "RemoteTrackPublication",
    "RemoteVideoTrack",
    "Room",
    "RoomOptions",
    "RpcError",
    "RpcInvocationData",
    "RtcConfiguration",
    "RtcStats",
    "SipDTMF",
    "StreamError",
    "StreamState",
    "SubscribeDataTrackError",
    "TextStreamInfo",
    "TextStreamReader",
    "TextStreamWriter",
    "Track",
    "TrackKind",
    "TrackPublication",
    "TrackPublishOptions",
    "TrackSource",
    "Transcription",
    "TranscriptionSegment",
    "VideoBufferType",
    "VideoCodec",
    "VideoEncoding",
    "VideoFrame",
    "VideoFrameEvent",
    "VideoQuality",
    "VideoRotation",
    "VideoSource",
    "VideoStream",
    "VideoTrack",
    "combine_audio_frames",
    "stats",
]
