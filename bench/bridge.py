"""Bridge benchmark: what the blocking facade costs next to plain asyncio livekit.

1. Per-frame cost of a local AudioSource -> LocalAudioTrack -> AudioStream round trip, frames
   captured and consumed from greenlets through syncagents.rtc, vs. the same pipeline driven by
   plain asyncio (``livekit.rtc`` in a separate, unpatched process). Runs alternate A/B so both
   see the same machine noise; the ratio of medians is printed (goal <= 1.3).
2. Max hub lag (a 5 ms ticker greenlet) while N concurrent streams of 10 ms frames run at
   real-time pace (default 200 for 10 s; goal < 20 ms), with frames delivered vs. expected.

Usage: python bench/bridge.py [--frames 3000] [--rounds 3] [--streams 200] [--seconds 10]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

RATE, SAMPLES = 48000, 480  # 10 ms mono frames


def _asyncio_baseline(frames: int) -> float:
    """Plain asyncio livekit, no gevent: seconds for ``frames`` through source -> stream."""
    import asyncio

    from livekit import rtc

    async def main() -> float:
        src = rtc.AudioSource(RATE, 1, queue_size_ms=0)
        track = rtc.LocalAudioTrack.create_audio_track("bench", src)
        stream = rtc.AudioStream(track, sample_rate=RATE, num_channels=1)
        data = bytes(SAMPLES * 2)
        target = frames - 10  # livekit may keep the tail in its 10 ms chunker

        async def consume() -> None:
            n = 0
            async for _ in stream:
                n += 1
                if n >= target:
                    break

        t0 = time.perf_counter()
        consumer = asyncio.create_task(consume())
        for _ in range(frames):
            await src.capture_frame(rtc.AudioFrame(data, RATE, 1, SAMPLES))
        await consumer
        elapsed = time.perf_counter() - t0
        await stream.aclose()
        await src.aclose()
        return elapsed

    return asyncio.run(main())


def _syncagents_run(frames: int) -> float:
    import gevent

    from syncagents import rtc

    src = rtc.AudioSource(RATE, 1, queue_size_ms=0)
    track = rtc.LocalAudioTrack.create_audio_track("bench", src)
    stream = rtc.AudioStream(track, RATE, 1)
    data = bytes(SAMPLES * 2)
    target = frames - 10

    def consume() -> None:
        for n, _ in enumerate(stream, 1):
            if n >= target:
                break

    def produce() -> None:
        for _ in range(frames):
            src.capture_frame(rtc.AudioFrame(data, RATE, 1, SAMPLES))

    t0 = time.perf_counter()
    c, p = gevent.spawn(consume), gevent.spawn(produce)
    gevent.joinall([c, p], raise_error=True)
    elapsed = time.perf_counter() - t0
    stream.close()
    src.close()
    return elapsed


def per_frame_cost(frames: int, rounds: int) -> dict[str, float]:
    import subprocess  # here, not at the top: syncagents must patch before it is imported

    ours: list[float] = []
    base: list[float] = []
    _syncagents_run(200)  # warm-up: FFI init, bridge thread
    for _ in range(rounds):
        out = subprocess.run(
            [sys.executable, __file__, "--asyncio-baseline", str(frames)],
            capture_output=True, text=True, check=True, timeout=300,
        )
        base.append(float(out.stdout.strip().splitlines()[-1]))
        ours.append(_syncagents_run(frames))
    b, o = statistics.median(base), statistics.median(ours)
    return {
        "asyncio_us_per_frame": b / frames * 1e6,
        "syncagents_us_per_frame": o / frames * 1e6,
        "ratio": o / b,
    }


def hub_lag(streams: int, seconds: float) -> dict[str, float]:
    import gevent

    from syncagents import rtc

    data = bytes(SAMPLES * 2)
    pairs = []
    for i in range(streams):
        src = rtc.AudioSource(RATE, 1, queue_size_ms=0)
        track = rtc.LocalAudioTrack.create_audio_track(f"s{i}", src)
        pairs.append((src, rtc.AudioStream(track, RATE, 1)))
    received = [0]
    lateness: list[float] = []
    stop = time.perf_counter() + seconds
    start = time.perf_counter()

    def producer(src: rtc.AudioSource) -> None:
        # real-time pace on the wall clock: frame k is due at start + k * 10 ms
        k = 0
        while True:
            due = start + k * 0.01
            if due >= stop:
                return
            delay = due - time.perf_counter()
            if delay > 0:
                gevent.sleep(delay)
            src.capture_frame(rtc.AudioFrame(data, RATE, 1, SAMPLES))
            k += 1

    def consumer(stream: rtc.AudioStream) -> None:
        for _ in stream:
            received[0] += 1

    def ticker() -> None:
        while True:
            t = time.perf_counter()
            gevent.sleep(0.005)
            lateness.append(time.perf_counter() - t - 0.005)

    tk = gevent.spawn(ticker)
    consumers = [gevent.spawn(consumer, s) for _, s in pairs]
    producers = [gevent.spawn(producer, src) for src, _ in pairs]
    gevent.joinall(producers)
    elapsed = time.perf_counter() - start
    gevent.sleep(0.5)  # let in-flight frames land before counting
    tk.kill()
    for src, stream in pairs:
        stream.close()
        src.close()
    gevent.joinall(consumers, timeout=10)
    expected = streams * seconds * 100
    lateness.sort()
    return {
        "streams": streams,
        "seconds": seconds,
        "wall_s": elapsed,
        "max_hub_lag_ms": lateness[-1] * 1000,
        "p99_hub_lag_ms": lateness[int(len(lateness) * 0.99)] * 1000,
        "frames_delivered_ratio": received[0] / expected,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--asyncio-baseline", type=int, default=0)
    ap.add_argument("--frames", type=int, default=3000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--streams", type=int, nargs="+", default=[50, 200])
    ap.add_argument("--seconds", type=float, default=10.0)
    args = ap.parse_args()
    if args.asyncio_baseline:
        print(_asyncio_baseline(args.asyncio_baseline))
        return

    import syncagents  # noqa: F401  (patches gevent; the baseline process never imports it)

    cost = per_frame_cost(args.frames, args.rounds)
    print(
        f"per-frame source->stream round trip: asyncio {cost['asyncio_us_per_frame']:.0f} us, "
        f"syncagents {cost['syncagents_us_per_frame']:.0f} us, ratio {cost['ratio']:.2f} "
        f"(goal <= 1.3)"
    )
    results: dict[str, object] = {"per_frame": cost}
    for n in args.streams:
        lag = hub_lag(n, args.seconds)
        results[f"hub_lag_{n}"] = lag
        print(
            f"{n} real-time streams for {args.seconds:.0f} s: max hub lag "
            f"{lag['max_hub_lag_ms']:.1f} ms, p99 {lag['p99_hub_lag_ms']:.1f} ms (goal < 20), "
            f"frames delivered {lag['frames_delivered_ratio'] * 100:.0f}% of real time"
        )
    print(json.dumps(results))


if __name__ == "__main__":
    main()
