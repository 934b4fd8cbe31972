"""Benchmarks of the offline plugins: prints figures, asserts nothing.

    python bench/plugins.py [--streams 20] [--seconds 5]

* silero: CPU per 32 ms window (goal <= 0.3 ms), and hub lag while N real-time streams run;
* espeak: real-time factor (synthesis time / audio duration);
* pocketsphinx: real-time factor, and hub lag while it decodes; streaming recognition of
  real-time speech: how soon the final transcript follows the end of speech (p50/p95), once
  the endpointer has declared it and from the true end of the words, against the batch STT
  behind ``stt.StreamAdapter`` + silero, and hub lag meanwhile.
"""

from __future__ import annotations

# ruff: noqa: I001 - syncagents first: gevent must be patched before subprocess/queue load
import syncagents  # noqa: F401

import argparse
import math
import os
import sys
import time
from collections.abc import Callable
from typing import Any, ClassVar

import gevent
import numpy as np
from gevent.pool import Group


sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))

from speech import compose, speak, to_frames

from syncagents import stt, to_thread, vad
from syncagents.plugins import espeak, pocketsphinx, silero
from syncagents.plugins.espeak._engine import engine as espeak_engine
from syncagents.plugins.pocketsphinx import stt as pocketsphinx_stt
from syncagents.plugins.pocketsphinx._stream import Segmenter
from syncagents.plugins.silero._model import pool_for

SENTENCES = [
    "What is the weather like today?",
    "Good morning, how are you?",
    "One two three four five six seven.",
    "I would like to order a pizza.",
]


class Ticker:
    """Hub lag: how late a greenlet that sleeps ``period`` wakes up."""

    def __init__(self, period: float = 0.005) -> None:
        self.period = period
        self.lags_ms: list[float] = []
        self._group = Group()

    def __enter__(self) -> Ticker:
        self._group.spawn(self._run)
        return self

    def __exit__(self, *exc: object) -> None:
        self._group.kill(block=True, timeout=2)

    def _run(self) -> None:
        while True:
            start = time.perf_counter()
            gevent.sleep(self.period)
            self.lags_ms.append((time.perf_counter() - start - self.period) * 1000.0)

    def summary(self) -> str:
        lags = np.array(self.lags_ms or [0.0])
        return (
            f"p50 {np.percentile(lags, 50):.1f} ms, p99 {np.percentile(lags, 99):.1f} ms, "
            f"max {lags.max():.1f} ms ({len(lags)} ticks)"
        )


def silero_cpu_per_window(windows: int = 3000) -> None:
    audio = speak(" ".join(SENTENCES)).astype(np.float32) / 32768.0
    count = len(audio) // 512
    batch = audio[: count * 512].reshape(count, 512)
    predict = silero.VAD()._new_predictor()

    def run() -> tuple[float, float]:
        cpu = time.thread_time()
        wall = time.perf_counter()
        for i in range(windows):
            predict(batch[i % count])
        return time.thread_time() - cpu, time.perf_counter() - wall

    cpu, wall = to_thread(run)
    print(
        f"silero: {cpu / windows * 1000:.3f} ms CPU per 32 ms window "
        f"({wall / windows * 1000:.3f} ms wall; goal <= 0.3 ms)"
    )


def realtime_stream(v: vad.VAD, frames: list[Any], frame_s: float) -> int:
    stream = v.stream()
    group = Group()
    reader = group.spawn(
        lambda: sum(1 for ev in stream if ev.type is vad.VADEventType.END_OF_SPEECH)
    )
    start = time.perf_counter()
    try:
        for n, frame in enumerate(frames):
            stream.push_frame(frame)
            delay = start + (n + 1) * frame_s - time.perf_counter()
            if delay > 0:
                gevent.sleep(delay)  # a live source delivers one frame per frame duration
        stream.end_input()
        return int(reader.get(timeout=60))
    finally:
        group.kill(block=True, timeout=2)
        stream.close()


def silero_hub_lag(streams: int, seconds: float) -> None:
    audio, _ = compose(0.5, SENTENCES[0], 0.8, SENTENCES[1], 0.5)
    reps = max(1, int(np.ceil(seconds * 16000 / len(audio))))
    frames = to_frames(np.tile(audio, reps)[: int(seconds * 16000)], 16000, 20)
    v = silero.VAD()
    for label, warm in (("cold (models load)", False), ("warm (models pooled)", True)):
        if warm:
            to_thread(pool_for(16000).prewarm, streams)
        with Ticker() as ticker:
            group = Group()
            for _ in range(streams):
                group.spawn(realtime_stream, v, frames, 0.02)
            group.join(timeout=seconds * 4 + 30, raise_error=True)
        print(f"silero: hub lag, {streams} real-time streams of {seconds:.0f} s, {label}: "
              f"{ticker.summary()}")


def rtf(label: str, audio_seconds: float, fn: Callable[[], object], repeat: int = 3) -> None:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    best = min(times)
    print(f"{label}: real-time factor {best / audio_seconds:.4f} "
          f"({best * 1000:.1f} ms for {audio_seconds:.2f} s of audio, best of {repeat})")


def espeak_rtf() -> None:
    text = " ".join(SENTENCES)
    rate = to_thread(espeak_engine.prepare, "en-us")
    samples = to_thread(espeak_engine.synthesize, text, "en-us", 175)
    audio_s = len(samples) / rate
    rtf("espeak engine", audio_s, lambda: to_thread(espeak_engine.synthesize, text, "en-us", 175))
    tts = espeak.TTS()
    rtf("espeak TTS.synthesize (frames)", audio_s,
        lambda: tts.synthesize(text).collect(timeout=30))


def pocketsphinx_rtf() -> None:
    audio = speak(" ".join(SENTENCES))
    frames = to_frames(audio)
    audio_s = len(audio) / 16000
    for confidence in (False, True):
        engine = pocketsphinx.STT(prewarm=True, word_confidence=confidence)

        def decode(engine: pocketsphinx.STT = engine) -> object:
            return engine.recognize(frames, timeout=120)

        with Ticker() as ticker:
            rtf(f"pocketsphinx (word_confidence={confidence})", audio_s, decode)
        print(f"pocketsphinx (word_confidence={confidence}): hub lag while decoding: "
              f"{ticker.summary()}")


class _TimedSegmenter(Segmenter):
    """The streaming STT's endpointer half, noting when (wall clock) it declared each end of
    speech. Instances register in creation order, so a stream created alone can find its own."""

    created: ClassVar[list[_TimedSegmenter]] = []

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.decided: list[float] = []
        _TimedSegmenter.created.append(self)

    def _note(self, closes_before: int) -> None:
        self.decided.extend([time.perf_counter()] * (self._closes() - closes_before))

    def _closes(self) -> int:
        return sum(1 for op in self.ops if type(op).__name__ == "_Close")

    def push(self, pcm: bytes) -> None:
        before = self._closes()
        super().push(pcm)
        self._note(before)

    def end(self) -> None:
        before = self._closes()
        super().end()
        self._note(before)


def realtime_finals(
    engine: stt.STT, frames: list[Any], speech_ends: list[float]
) -> tuple[list[float], list[float]]:
    """Stream ``frames`` at real-time pace; per utterance, seconds from (a) the endpointer's
    end-of-speech decision (native pocketsphinx streams only) and (b) the true end of the
    words (``speech_ends``, s into the audio) to the FINAL_TRANSCRIPT reaching the consumer."""
    stream = engine.stream()
    created = len(_TimedSegmenter.created)
    gevent.sleep(0)  # the stream's greenlet starts: a native stream makes its segmenter now
    segmenter = (
        _TimedSegmenter.created[created] if len(_TimedSegmenter.created) > created else None
    )
    pushed_at: list[float] = []
    group = Group()

    def push() -> None:
        start = time.perf_counter()
        for n, frame in enumerate(frames):
            stream.push_frame(frame)
            pushed_at.append(time.perf_counter())
            delay = start + (n + 1) * 0.02 - time.perf_counter()
            if delay > 0:
                gevent.sleep(delay)
        stream.end_input()

    group.spawn(push)
    finals: list[float] = []
    try:
        with gevent.Timeout(120):
            for ev in stream:
                if ev.type is stt.SpeechEventType.FINAL_TRANSCRIPT:
                    finals.append(time.perf_counter())
    finally:
        group.kill(block=True, timeout=2)
        stream.close()
    if len(finals) != len(speech_ends):
        print(f"  (warning: {len(finals)} finals for {len(speech_ends)} utterances)")
    after_decision = (
        [f - d for f, d in zip(finals, segmenter.decided)] if segmenter is not None else []
    )
    after_words = []
    for final, end in zip(finals, speech_ends):
        frame = min(len(pushed_at) - 1, math.ceil(end / 0.02) - 1)  # the frame holding the end
        after_words.append(final - pushed_at[frame])
    return after_decision, after_words


def _p50_p95(values: list[float]) -> str:
    if not values:
        return "n/a"
    ms = np.array(values) * 1000.0
    return (f"p50 {np.percentile(ms, 50):.0f} ms, p95 {np.percentile(ms, 95):.0f} ms "
            f"({len(ms)} utterances)")


def pocketsphinx_streaming(streams: int) -> None:
    parts: list[str | float] = [0.5]
    for sentence in SENTENCES:
        parts += [sentence, 1.0]
    audio, segments = compose(*parts)
    frames = to_frames(audio)
    ends = [end for _, end in segments]
    pocketsphinx_stt.Segmenter = _TimedSegmenter  # type: ignore[misc]  # (bench instrumentation)
    native = pocketsphinx.STT()
    native.prewarm(streams)
    adapter = stt.StreamAdapter(stt=native, vad=silero.VAD())
    for label, engine in (("streaming", native), ("batch behind StreamAdapter+silero", adapter)):
        decision: list[float] = []
        words_end: list[float] = []
        group = Group()
        with Ticker() as ticker:
            jobs = []
            for _ in range(streams):  # one at a time, so each finds its own segmenter
                jobs.append(group.spawn(realtime_finals, engine, frames, ends))
                gevent.sleep(0.001)
            group.join(timeout=180, raise_error=True)
        for job in jobs:
            decision.extend(job.value[0])
            words_end.extend(job.value[1])
        print(f"pocketsphinx {label}, {streams} real-time streams of {len(SENTENCES)} "
              f"utterances: final after the end of the words: {_p50_p95(words_end)}")
        if decision:
            print(f"pocketsphinx {label}: final after the endpointer's end of speech: "
                  f"{_p50_p95(decision)}")
        print(f"pocketsphinx {label}: hub lag meanwhile: {ticker.summary()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--streams", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--stt-streams", type=int, default=2,
                        help="concurrent real-time pocketsphinx streams")
    args = parser.parse_args()
    print(f"cpus: {os.cpu_count()}, load average: {os.getloadavg()[0]:.2f}")
    silero_cpu_per_window()
    silero_hub_lag(args.streams, args.seconds)
    espeak_rtf()
    pocketsphinx_rtf()
    pocketsphinx_streaming(args.stt_streams)
    print(f"load average at the end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
