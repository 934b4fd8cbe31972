"""Audio codecs: streaming decoding of any audio PyAV reads (``AudioStreamDecoder``), the
``StreamBuffer`` byte pipe it reads through, streaming MP3 decoding (``Mp3StreamDecoder``) and
WAV read/write (stdlib ``wave``)."""

from __future__ import annotations

from . import wav
from .decoder import AudioStreamDecoder, StreamBuffer
from .mp3 import Mp3StreamDecoder, encode_mp3
from .wav import WavWriter, read_wav, wav_bytes, write_wav

__all__ = [
    "AudioStreamDecoder",
    "Mp3StreamDecoder",
    "StreamBuffer",
    "WavWriter",
    "encode_mp3",
    "read_wav",
    "wav",
    "wav_bytes",
    "write_wav",
]
