"""Audio codecs: streaming MP3 decoding (PyAV) and WAV read/write (stdlib ``wave``)."""

from __future__ import annotations

from . import wav
from .mp3 import Mp3StreamDecoder, encode_mp3
from .wav import WavWriter, read_wav, wav_bytes, write_wav

__all__ = [
    "Mp3StreamDecoder",
    "WavWriter",
    "encode_mp3",
    "read_wav",
    "wav",
    "wav_bytes",
    "write_wav",
]
