"""Blocking facade over ``livekit.rtc`` (WORK IN PROGRESS: data classes only so far)."""

from __future__ import annotations

from .._bridge import livekit_rtc

_lk = livekit_rtc()

AudioFrame = _lk.AudioFrame
AudioFrameEvent = _lk.AudioFrameEvent
TrackKind = _lk.TrackKind
TrackSource = _lk.TrackSource
TrackPublishOptions = _lk.TrackPublishOptions
ConnectionState = _lk.ConnectionState
DataPacketKind = _lk.DataPacketKind


class AudioResampler(_lk.AudioResampler):  # type: ignore[misc,name-defined]
    """``livekit.rtc.AudioResampler`` with ``num_channels`` also positional (API.md)."""

    def __init__(self, input_rate: int, output_rate: int, num_channels: int = 1, **kw: object) -> None:
        super().__init__(input_rate, output_rate, num_channels=num_channels, **kw)  # type: ignore[arg-type]
