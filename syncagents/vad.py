"""Voice activity detection: the ``VAD`` base class and its blocking ``VADStream``.

A plugin only maps one window of audio to a speech probability (``_new_predictor``); the base
class does everything around it:

* input of any rate and channel count: downmixed, then resampled to the VAD rate;
* windowing into exactly ``window_samples`` samples, inference batched per wake-up (all windows
  available at that moment go to one ``syncagents.to_thread`` call, so per-frame overhead
  stays low and the hub is never held by a model);
* hysteresis: speech starts after ``min_speech_duration`` of windows at or above
  ``activation_threshold``, and ends after ``min_silence_duration`` of windows below a lower
  deactivation threshold (so a probability hovering around the threshold does not flap);
* prefix padding: START/END frames begin ``prefix_padding_duration`` before the speech;
* ``flush()``: a hard segment boundary (a speech in progress ends with END_OF_SPEECH, the
  next audio starts from fresh state);
* the events.

Timing of the events (seconds from the start of the stream, at the VAD rate):
``timestamp`` is the end of the window that produced the event. On START_OF_SPEECH,
``speech_duration`` is how long speech had lasted, so the speech began at
``timestamp - speech_duration``. On END_OF_SPEECH, ``silence_duration`` is the silence that
ended it, so the speech ended at ``timestamp - silence_duration``; ``frames`` holds the whole
segment (prefix padding, speech, and that trailing silence) as one mono frame at the VAD rate.
"""

from __future__ import annotations

import collections
import enum
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from loguru import logger

from . import rtc
from .channel import ChanClosed
from .runtime import to_thread
from .utils.audio import Resampler
from .utils.input_stream import Flush, InputStream

__all__ = ["VAD", "VADEvent", "VADEventType", "VADStream"]

Predictor = Callable[[np.ndarray], float]


class VADEventType(str, enum.Enum):
    """The kind of a ``VADEvent``.

    ``START_OF_SPEECH`` once speech lasted ``min_speech_duration``, ``INFERENCE_DONE`` after every
    window, ``END_OF_SPEECH`` once silence lasted ``min_silence_duration`` (or when ``flush()``
    or ``end_input()`` cuts the speech short).
    """

    START_OF_SPEECH = "start_of_speech"
    INFERENCE_DONE = "inference_done"
    END_OF_SPEECH = "end_of_speech"


@dataclass
class VADEvent:
    """What a VAD stream reports: start or end of speech, or the result of one inference
    window, with the speech and silence durations at that point."""

    type: VADEventType
    samples_index: int
    """Samples (at the VAD rate) processed since the stream began, this window included."""
    timestamp: float
    """``samples_index`` in seconds."""
    speech_duration: float
    silence_duration: float
    frames: list[Any] = field(default_factory=list)
    """rtc.AudioFrame list. INFERENCE_DONE: the window; START/END: the segment so far."""
    probability: float = 0.0
    speaking: bool = False
    inference_duration: float = 0.0
    """Seconds of inference per window (INFERENCE_DONE)."""


class VAD:
    """Base class of voice activity detectors. Subclasses implement ``_new_predictor``.

    ``inference_in_thread``: run the predictor through ``syncagents.to_thread`` (default).
    A predictor that costs microseconds (an energy threshold) may set it to False: it then runs
    inline, saving the thread hop.
    """

    inference_in_thread: bool = True

    def __init__(
        self,
        *,
        sample_rate: int = 16000,
        window_samples: int = 512,
        min_speech_duration: float = 0.05,
        min_silence_duration: float = 0.55,
        activation_threshold: float = 0.5,
        deactivation_threshold: float | None = None,
        prefix_padding_duration: float = 0.3,
        max_buffered_speech: float = 60.0,
    ) -> None:
        if window_samples <= 0 or sample_rate <= 0:
            raise ValueError("sample_rate and window_samples must be positive")
        self.sample_rate = sample_rate
        self.window_samples = window_samples
        self.min_speech_duration = min_speech_duration
        self.min_silence_duration = min_silence_duration
        self.activation_threshold = activation_threshold
        # livekit-agents' rule: end of speech needs the probability clearly below activation
        self.deactivation_threshold = (
            deactivation_threshold
            if deactivation_threshold is not None
            else max(activation_threshold - 0.15, 0.01)
        )
        self.prefix_padding_duration = prefix_padding_duration
        self.max_buffered_speech = max_buffered_speech

    @property
    def window_duration(self) -> float:
        """The length of one inference window, in seconds (``window_samples / sample_rate``)."""
        return self.window_samples / self.sample_rate

    @property
    def label(self) -> str:
        """The plugin's name: ``module.ClassName``."""
        return f"{type(self).__module__}.{type(self).__name__}"

    def _new_predictor(self) -> Predictor:
        """One stateful callable per stream: float32 window of ``window_samples`` → 0..1.

        If it has a ``reset()`` method, the stream calls it at each ``flush()`` (on the hub:
        it must be quick) so the next segment starts from a fresh model state.
        """
        raise NotImplementedError

    def stream(self) -> VADStream:
        """A new ``VADStream`` with its own predictor (from ``_new_predictor()``).

        Push audio of any rate and channel count with ``push_frame``; iterate ``VADEvent``.
        """
        return VADStream(self, self._new_predictor())


class VADStream(InputStream[Any, VADEvent]):
    """Push audio from one greenlet (``push_frame``), iterate ``VADEvent`` in another.

    A worker greenlet owned by the stream does the inference. ``flush()`` is a hard segment
    boundary, as in livekit-agents: the audio pushed before it is analysed (its last partial
    window zero-padded), a speech still in progress ends there with END_OF_SPEECH, and the
    next audio starts afresh (no hysteresis counts, prefix padding or predictor state carried
    over; livekit-agents drops such a speech silently, here START/END always pair). The
    stream's clock keeps running across a flush (the padding is not counted).
    Iteration ends once ``end_input()`` was called and everything pushed before it is
    processed (a speech segment still open then gets its END_OF_SPEECH too); ``close()`` ends
    it at once, dropping what is pending. A failure in the predictor is re-raised to the
    iterating greenlet. ``recv(timeout=None)`` waits for one event with a timeout
    (``ChanClosed`` at the end).
    """

    def __init__(self, vad: VAD, predictor: Predictor) -> None:
        super().__init__()
        self._vad = vad
        self._predictor = predictor
        self._sr = vad.sample_rate
        self._window = vad.window_samples

        # conversion to mono at the VAD rate
        self._resampler = Resampler(self._sr)
        self._pending: list[np.ndarray] = []  # int16 mono at the VAD rate, not yet windowed
        self._pending_len = 0

        # hysteresis state, in samples at the VAD rate (integers: no drift over long streams)
        self._samples_index = 0
        self._speaking = False
        self._speech_run = 0  # consecutive speech samples while not speaking
        self._silence_run = 0  # consecutive silence samples while speaking
        self._last_confident = 0  # end of the last window >= activation threshold
        self._speech_start = 0  # samples_index where the current speech began
        self._min_speech = vad.min_speech_duration * self._sr
        self._min_silence = vad.min_silence_duration * self._sr
        prefix = vad.prefix_padding_duration * self._sr / self._window
        self._prefix_windows = max(0, math.ceil(prefix))
        self._max_windows = max(1, int(vad.max_buffered_speech * self._sr / self._window))
        self._segment: collections.deque[np.ndarray] = collections.deque()
        self._overflow_warned = False

        self._spawn_producer(self._run)

    # -- input ---------------------------------------------------------------------------------

    def push_frame(self, frame: Any) -> None:
        """Queue an ``rtc.AudioFrame`` (any rate, any channel count). Never blocks.

        ``RuntimeError`` after ``end_input()`` or ``close()``."""
        self._push("push_frame", frame)

    # -- worker --------------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            try:
                first = self._input.recv()
            except ChanClosed:
                break
            # everything that arrived while we were busy goes into one inference batch, and
            # runs of same-rate audio into one resampler call (an FFI round trip each)
            run: list[np.ndarray] = []
            run_rate = 0
            for item in [first, *self._input.drain_nowait()]:
                if isinstance(item, Flush):
                    self._ingest_run(run, run_rate)
                    run = []
                    self._end_segment()
                    continue
                rate = int(item.sample_rate)
                if run and rate != run_rate:
                    self._ingest_run(run, run_rate)
                    run = []
                run_rate = rate
                run.append(_mono(item))
            self._ingest_run(run, run_rate)
            self._infer_pending()
        self._end_segment()

    def _ingest_run(self, run: list[np.ndarray], rate: int) -> None:
        if run:
            self._ingest(np.concatenate(run) if len(run) > 1 else run[0], rate)

    def _ingest(self, data: np.ndarray, rate: int) -> None:
        """Mono int16 samples at ``rate`` → resampled to the VAD rate, queued for windowing."""
        if rate == self._sr:  # the common case stays in numpy, no frame round trip
            self._flush_resampler()  # audio held back from an earlier rate goes first
            self._append(data)
            return
        mono = rtc.AudioFrame(data.tobytes(), rate, 1, len(data))
        for out in self._resampler.push(mono):  # a rate change flushes the old resampler
            self._append(np.frombuffer(out.data, dtype=np.int16))

    def _flush_resampler(self) -> None:
        for out in self._resampler.flush():
            self._append(np.frombuffer(out.data, dtype=np.int16))

    def _append(self, samples: np.ndarray) -> None:
        if len(samples):
            self._pending.append(samples)
            self._pending_len += len(samples)

    def _end_segment(self) -> None:
        """``flush()`` or the end of input: analyse everything pushed so far, end a speech in
        progress, and start afresh."""
        self._flush_resampler()
        pad = -self._pending_len % self._window
        if pad:  # zero-pad the last partial window so the end of the audio is analysed
            self._append(np.zeros(pad, dtype=np.int16))
        self._infer_pending()
        if self._speaking:  # the audio ended inside speech: the segment ends with it
            self._emit(VADEventType.END_OF_SPEECH, [self._segment_frame()], 0.0)
            self._reset_after_speech()
        # A hard boundary: nothing from before decides about the audio after it.
        self._speech_run = 0
        self._segment.clear()
        self._overflow_warned = False
        reset = getattr(self._predictor, "reset", None)
        if reset is not None:
            reset()
        # the padding was not audio: later timestamps stay those of the audio pushed
        self._samples_index -= pad

    def _infer_pending(self) -> None:
        count = self._pending_len // self._window
        if count == 0:
            return
        pending = np.concatenate(self._pending) if len(self._pending) > 1 else self._pending[0]
        used = count * self._window
        windows = pending[:used].reshape(count, self._window)
        rest = pending[used:]
        self._pending = [rest] if len(rest) else []
        self._pending_len = len(rest)

        floats = _to_float(windows)
        if self._vad.inference_in_thread:
            probs, elapsed = to_thread(_predict_all, self._predictor, floats)
        else:
            probs, elapsed = _predict_all(self._predictor, floats)
        per_window = elapsed / count
        for window, prob in zip(windows, probs):
            self._on_window(window, prob, per_window)

    def _on_window(self, window: np.ndarray, prob: float, inference_duration: float) -> None:
        vad = self._vad
        w = self._window
        self._samples_index += w
        self._push_segment(window)

        started = ended = False
        if not self._speaking:
            if prob >= vad.activation_threshold:
                self._speech_run += w
                if self._speech_run >= self._min_speech:
                    started = True
                    self._speaking = True
                    self._silence_run = 0
                    self._speech_start = self._samples_index - self._speech_run
                    self._last_confident = self._samples_index
            else:
                self._speech_run = 0
                self._trim_to_prefix()
        elif prob < vad.deactivation_threshold:
            self._silence_run += w
            ended = self._silence_run >= self._min_silence
        else:
            self._silence_run = 0
        if self._speaking and prob >= vad.activation_threshold:
            # The speech ends where the model was last confident, not where it fell below
            # the (lower) deactivation threshold: that decay lags the audio by ~50-100 ms.
            self._last_confident = self._samples_index

        # the window's frame is built only if someone reads ev.frames (endpointing does not)
        lazy = _WindowFrames(window, self._sr)
        self._emit(VADEventType.INFERENCE_DONE, lazy, prob, inference_duration)
        if started:
            self._emit(VADEventType.START_OF_SPEECH, [self._segment_frame()], prob)
        elif ended:
            self._speaking = False
            self._emit(VADEventType.END_OF_SPEECH, [self._segment_frame()], prob, ending=True)
            self._reset_after_speech()

    def _reset_after_speech(self) -> None:
        self._speaking = False
        self._speech_run = 0
        self._silence_run = 0
        self._trim_to_prefix()

    def _push_segment(self, window: np.ndarray) -> None:
        if len(self._segment) >= self._max_windows + self._prefix_windows:
            if not self._overflow_warned:
                self._overflow_warned = True
                logger.warning(
                    "VAD speech segment longer than {} s: later audio is not buffered",
                    self._vad.max_buffered_speech,
                )
            return
        self._segment.append(window)

    def _trim_to_prefix(self) -> None:
        while len(self._segment) > self._prefix_windows:
            self._segment.popleft()
        self._overflow_warned = False

    def _segment_frame(self) -> Any:
        data = np.concatenate(list(self._segment)) if self._segment else np.zeros(0, np.int16)
        return self._frame(data)

    def _frame(self, samples: np.ndarray) -> Any:
        return rtc.AudioFrame(samples.tobytes(), self._sr, 1, len(samples))

    def _emit(
        self,
        type_: VADEventType,
        frames: list[Any] | _WindowFrames,
        probability: float,
        inference_duration: float = 0.0,
        *,
        ending: bool = False,
    ) -> None:
        if ending:
            silence = self._samples_index - max(self._last_confident, self._speech_start)
            speech = self._samples_index - self._speech_start - silence
        elif self._speaking or type_ is VADEventType.END_OF_SPEECH:
            speech = self._samples_index - self._speech_start - self._silence_run
            silence = self._silence_run
        else:
            speech = self._speech_run
            silence = 0
        window = frames if isinstance(frames, _WindowFrames) else None
        self._out.send_nowait(
            (VADEvent if window is None else _WindowEvent)(
                type=type_,
                samples_index=self._samples_index,
                timestamp=self._samples_index / self._sr,
                speech_duration=speech / self._sr,
                silence_duration=silence / self._sr,
                frames=frames,  # type: ignore[arg-type]  # _WindowEvent takes the window
                probability=probability,
                speaking=self._speaking,
                inference_duration=inference_duration,
            )
        )


class _WindowFrames:
    """An INFERENCE_DONE window not yet made into an ``rtc.AudioFrame``."""

    __slots__ = ("sample_rate", "samples")

    def __init__(self, samples: np.ndarray, sample_rate: int) -> None:
        self.samples = samples
        self.sample_rate = sample_rate


class _WindowEvent(VADEvent):
    """An INFERENCE_DONE ``VADEvent`` whose ``frames`` are built when first read.

    One event per window (every 32 ms per participant) and most readers only look at the
    probability and durations: an ``AudioFrame`` (a native object) per window that nobody
    reads is wasted work on the hub. To its readers it is an ordinary ``VADEvent``.
    """

    _frames: list[Any] | _WindowFrames

    @property  # type: ignore[override]
    def frames(self) -> list[Any]:
        """The window as one mono ``rtc.AudioFrame`` at the VAD rate, in a list."""
        pending = self._frames
        if isinstance(pending, _WindowFrames):
            samples = pending.samples
            self._frames = [rtc.AudioFrame(samples.tobytes(), pending.sample_rate, 1, len(samples))]
        return self._frames  # type: ignore[return-value]

    @frames.setter
    def frames(self, value: list[Any] | _WindowFrames) -> None:
        self._frames = value


def _mono(frame: Any) -> np.ndarray:
    data = np.frombuffer(frame.data, dtype=np.int16)
    channels = int(frame.num_channels)
    if channels == 1:
        return data
    # average the channels (in int32 so the sum cannot overflow)
    return (data.reshape(-1, channels).astype(np.int32).sum(axis=1) // channels).astype(np.int16)


# numpy releases the GIL for a cast or a ufunc over more than 500 elements. On the hub that is
# a cost, not a gain: with the bridge loop and livekit's callback threads waiting for the GIL,
# one of them takes it and the hub waits up to the switch interval to get it back — measured
# ~0.1-0.5 ms for a conversion that takes 2 µs, on every VAD window of every stream. Pieces
# below that size keep the GIL (a large backlog, where one release is cheap, goes in one op).
_GIL_PIECE = 480
_INT16_SCALE = np.float32(1.0 / 32768.0)


def _to_float(windows: np.ndarray) -> np.ndarray:
    """int16 windows → float32 in [-1, 1), without releasing the GIL for small batches."""
    if windows.size > 16 * _GIL_PIECE:
        return np.multiply(windows, _INT16_SCALE, dtype=np.float32)
    out = np.empty(windows.shape, dtype=np.float32)
    flat_in, flat_out = windows.reshape(-1), out.reshape(-1)
    for i in range(0, flat_in.size, _GIL_PIECE):
        np.multiply(flat_in[i : i + _GIL_PIECE], _INT16_SCALE, out=flat_out[i : i + _GIL_PIECE])
    return out


def _predict_all(predictor: Predictor, windows: np.ndarray) -> tuple[list[float], float]:
    # runs on a native thread when inference_in_thread: no gevent primitives in here
    start = time.perf_counter()
    probs = [float(predictor(w)) for w in windows]
    return probs, time.perf_counter() - start
