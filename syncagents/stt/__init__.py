"""Speech-to-text: the plugin base class, its events, and ``StreamAdapter`` (batch STT + VAD →
streaming STT)."""

from __future__ import annotations

from .stream_adapter import SegmentStream, StreamAdapter
from .stt import (
    STT,
    SpeechData,
    SpeechEvent,
    SpeechEventType,
    SpeechStream,
    STTCapabilities,
    STTMetrics,
)

__all__ = [
    "STT",
    "STTCapabilities",
    "STTMetrics",
    "SegmentStream",
    "SpeechData",
    "SpeechEvent",
    "SpeechEventType",
    "SpeechStream",
    "StreamAdapter",
]
