"""Helpers shared by plugins and applications (audio frame utilities)."""

from __future__ import annotations

from . import audio
from .audio import (
    AudioByteStream,
    Resampler,
    from_float32,
    merge_frames,
    resample,
    rms_dbfs,
    sine_frame,
    split_frames,
    to_float32,
)

__all__ = [
    "AudioByteStream",
    "Resampler",
    "audio",
    "from_float32",
    "merge_frames",
    "resample",
    "rms_dbfs",
    "sine_frame",
    "split_frames",
    "to_float32",
]
