"""Generated speech for tests: espeak-ng (through the espeak plugin's engine, so the process
keeps one espeak state) resampled to the rate a test needs, plus helpers to find where the
speech really is and to compare transcripts.

    samples = speak("What is the weather like today?")            # int16, 16 kHz mono
    audio, segments = compose(1.0, "Hello there.", 1.0, "How are you?", 1.0)
    frames = to_frames(audio, 16000, frame_ms=20)
"""

from __future__ import annotations

import re
import wave
from collections.abc import Sequence
from typing import Any

import numpy as np

from syncagents import rtc, to_thread
from syncagents.plugins.espeak._engine import engine

__all__ = [
    "compose",
    "frames_to_samples",
    "resample",
    "silence",
    "speak",
    "speech_edges",
    "to_frames",
    "word_overlap",
    "words",
    "write_wav",
]

SAMPLE_RATE = 16000


def speak(
    text: str, *, voice: str = "en-us", rate: int = 175, sample_rate: int = SAMPLE_RATE
) -> np.ndarray:
    """``text`` spoken by espeak-ng: mono int16 samples at ``sample_rate``."""
    native = to_thread(engine.prepare, voice)
    samples = to_thread(engine.synthesize, text, voice, rate)
    return resample(samples, native, sample_rate)


def resample(samples: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    if from_rate == to_rate or len(samples) == 0:
        return samples.astype(np.int16, copy=False)
    resampler = rtc.AudioResampler(from_rate, to_rate, 1)
    frame = rtc.AudioFrame(samples.astype(np.int16).tobytes(), from_rate, 1, len(samples))
    out = [*resampler.push(frame), *resampler.flush()]
    return np.concatenate([np.frombuffer(f.data, dtype=np.int16) for f in out])


def silence(seconds: float, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    return np.zeros(round(seconds * sample_rate), dtype=np.int16)


def speech_edges(
    samples: np.ndarray,
    sample_rate: int = SAMPLE_RATE,
    *,
    threshold_db: float = -45.0,
    frame_ms: int = 5,
) -> tuple[float, float] | None:
    """(start, end) in seconds of the audible part: the first and last ``frame_ms`` frame
    whose RMS is above ``threshold_db`` dBFS. None for silence."""
    size = sample_rate * frame_ms // 1000
    n = len(samples) // size
    if n == 0:
        return None
    x = samples[: n * size].astype(np.float64).reshape(n, size) / 32768.0
    rms = np.sqrt((x * x).mean(axis=1))
    loud = np.nonzero(rms > 10 ** (threshold_db / 20))[0]
    if len(loud) == 0:
        return None
    return float(loud[0] * size / sample_rate), float((loud[-1] + 1) * size / sample_rate)


def compose(
    *parts: str | float, sample_rate: int = SAMPLE_RATE, voice: str = "en-us", rate: int = 175
) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """Concatenate spoken texts (``str``) and silences (``float`` seconds).

    Returns the audio and, per text, the true (start, end) of its speech in seconds,
    measured from the sample energies (espeak pads its output with silence)."""
    chunks: list[np.ndarray] = []
    segments: list[tuple[float, float]] = []
    offset = 0
    for part in parts:
        if isinstance(part, str):
            audio = speak(part, voice=voice, rate=rate, sample_rate=sample_rate)
            edges = speech_edges(audio, sample_rate)
            if edges is not None:
                base = offset / sample_rate
                segments.append((float(base + edges[0]), float(base + edges[1])))
        else:
            audio = silence(float(part), sample_rate)
        chunks.append(audio)
        offset += len(audio)
    return (np.concatenate(chunks) if chunks else silence(0, sample_rate)), segments


def to_frames(
    samples: np.ndarray, sample_rate: int = SAMPLE_RATE, frame_ms: int = 20, num_channels: int = 1
) -> list[Any]:
    """``rtc.AudioFrame``s of ``frame_ms`` (the last one may be shorter). With
    ``num_channels`` > 1 the mono samples are copied to every channel."""
    size = sample_rate * frame_ms // 1000
    frames = []
    for start in range(0, len(samples), size):
        chunk = samples[start : start + size].astype(np.int16)
        if num_channels > 1:
            chunk = np.repeat(chunk, num_channels)
        frames.append(
            rtc.AudioFrame(chunk.tobytes(), sample_rate, num_channels, len(chunk) // num_channels)
        )
    return frames


def frames_to_samples(frames: Sequence[Any]) -> np.ndarray:
    if not frames:
        return np.zeros(0, dtype=np.int16)
    return np.concatenate([np.frombuffer(f.data, dtype=np.int16) for f in frames])


def words(text: str) -> list[str]:
    return re.findall(r"[a-z']+", text.lower())


def word_overlap(reference: str, hypothesis: str) -> float:
    """Share of the reference's words found in the hypothesis (order ignored, each
    hypothesis word used once)."""
    ref = words(reference)
    if not ref:
        return 1.0
    pool = words(hypothesis)
    hits = 0
    for word in ref:
        if word in pool:
            pool.remove(word)
            hits += 1
    return hits / len(ref)


def write_wav(path: str, samples: np.ndarray, sample_rate: int = SAMPLE_RATE) -> None:
    """Save for listening when a test fails (``sox``/``aplay`` can play it)."""
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes(samples.astype("<i2").tobytes())
