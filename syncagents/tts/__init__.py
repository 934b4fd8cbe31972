"""Text-to-speech: the plugin base class, its streams, and ``StreamAdapter`` (batch TTS +
sentence tokenizer → streaming TTS)."""

from __future__ import annotations

from .stream_adapter import StreamAdapter
from .tts import (
    TTS,
    ChunkedStream,
    SynthesizedAudio,
    SynthesizeStream,
    TTSCapabilities,
    TTSMetrics,
)

__all__ = [
    "TTS",
    "ChunkedStream",
    "StreamAdapter",
    "SynthesizeStream",
    "SynthesizedAudio",
    "TTSCapabilities",
    "TTSMetrics",
]
