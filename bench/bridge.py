"""Bridge benchmark: what the blocking facade costs next to plain asyncio livekit (issue 11).

1. Per-frame cost of a local AudioSource -> LocalAudioTrack -> AudioStream burst, frames captured
   and consumed from greenlets through syncagents.rtc, vs. the same pipeline in plain asyncio
   (``livekit.rtc`` in a separate, unpatched process that stays up for the whole run). Runs
   alternate so both see the same machine; other work on it only ever adds time, so each
   arm's best run is its cost and the ratio of the bests is the figure (goal: <= 1.15), for
   wall time and for process CPU time; the median of the per-pair ratios is printed too. A
   third arm runs syncagents with the runtime's greenlet switch tracer installed, as in a
   worker.
2. The switch tracer (``runtime.SwitchTracer``, ``greenlet.settrace``) alone: time per raw
   greenlet switch and gevent ``sleep(0)`` switches per second, without and with it (and with
   the greenlets inside a job scope, the tracer's slow path).
3. N streams of 10 ms frames paced at real time for a fixed window (default 50 and 200 for 5 s):
   max and p99 hub lag (a 5 ms ticker greenlet; goal at 200: max < 20 ms), frames delivered in
   the window as a share of real time, CPU cores used and the longest GC pause; the same load
   in plain asyncio (loop lag of a 5 ms ticker task) side by side. With ``--gc-freeze``, both
   processes call ``gc.freeze()`` once started (what a worker could do after its imports): a
   full collection then skips the ~40 000 objects of the imported libraries.

Usage: python bench/bridge.py [--frames 300] [--rounds 40] [--streams 50 200] [--seconds 5]
                              [--gc-freeze]
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

RATE, SAMPLES = 48000, 480  # 10 ms mono frames
PER_FRAME_GOAL = 1.15
HUB_LAG_GOAL_MS = 20.0


class _GcPauses:
    """The longest garbage collection while installed (they stop every Python thread)."""

    def __init__(self) -> None:
        self.longest_ms = 0.0
        self._start = 0.0

    def __enter__(self) -> _GcPauses:
        gc.callbacks.append(self._on_gc)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self._on_gc)

    def _on_gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._start = time.perf_counter()
        else:
            self.longest_ms = max(self.longest_ms, (time.perf_counter() - self._start) * 1000)


def _context_switches() -> int:
    """Voluntary context switches of every thread of this process so far (Linux; 0 elsewhere):
    a thread going to sleep until another one hands it work or the GIL. Hand-offs, not Python,
    are most of a frame's cost on this kind of machine, and unlike time this count barely
    moves with other load (being preempted is an involuntary switch, not counted)."""
    import glob

    total = 0
    for status in glob.glob("/proc/self/task/*/status"):
        try:
            with open(status) as f:
                total += sum(
                    int(line.split()[1]) for line in f if line.startswith("voluntary_ctxt")
                )
        except OSError:  # a thread that just ended
            pass
    return total


def _lag_stats(lateness: list[float]) -> tuple[float, float]:
    """(p99, max) in ms."""
    if not lateness:
        return float("nan"), float("nan")
    lateness = sorted(lateness)
    return lateness[int(len(lateness) * 0.99)] * 1000, lateness[-1] * 1000


# -- plain asyncio (run in a separate process that never imports syncagents) ------------------


def _asyncio_frames(frames: int) -> tuple[float, float, int]:
    """Plain asyncio livekit: (wall s, process CPU s, context switches) for ``frames`` through
    source -> stream."""
    import asyncio

    from livekit import rtc

    async def main() -> tuple[float, float, int]:
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

        t0, c0, s0 = time.perf_counter(), time.process_time(), _context_switches()
        consumer = asyncio.create_task(consume())
        for _ in range(frames):
            await src.capture_frame(rtc.AudioFrame(data, RATE, 1, SAMPLES))
        await consumer
        elapsed = (
            time.perf_counter() - t0, time.process_time() - c0, _context_switches() - s0
        )
        await stream.aclose()
        await src.aclose()
        return elapsed

    return asyncio.run(main())


def _asyncio_streams(streams: int, seconds: float) -> dict[str, float]:
    """The stream load of :func:`streams_syncagents` in plain asyncio livekit."""
    import asyncio

    from livekit import rtc

    async def main() -> dict[str, float]:
        data = bytes(SAMPLES * 2)
        pairs = []
        for i in range(streams):
            src = rtc.AudioSource(RATE, 1, queue_size_ms=0)
            track = rtc.LocalAudioTrack.create_audio_track(f"s{i}", src)
            pairs.append((src, rtc.AudioStream(track, sample_rate=RATE, num_channels=1)))
        received = [0]
        lateness: list[float] = []
        start = time.perf_counter()
        stop = start + seconds

        async def producer(src: Any) -> None:
            k = 0
            while True:
                due = start + k * 0.01
                if due >= stop or time.perf_counter() >= stop:
                    return
                delay = due - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                await src.capture_frame(rtc.AudioFrame(data, RATE, 1, SAMPLES))
                k += 1

        async def consumer(stream: Any) -> None:
            async for _ in stream:
                received[0] += 1

        async def ticker() -> None:
            while True:
                t = time.perf_counter()
                await asyncio.sleep(0.005)
                lateness.append(time.perf_counter() - t - 0.005)

        with _GcPauses() as pauses:
            c0 = time.process_time()
            tasks = [asyncio.create_task(ticker())]
            tasks += [asyncio.create_task(consumer(s)) for _, s in pairs]
            await asyncio.wait(
                [asyncio.create_task(producer(src)) for src, _ in pairs],
                timeout=seconds + 30,
            )
            in_window = received[0]
            wall = time.perf_counter() - start
            cpu = time.process_time() - c0
        for task in tasks:
            task.cancel()
        for src, stream in pairs:
            await stream.aclose()
            await src.aclose()
        p99, worst = _lag_stats(lateness)
        return {
            "p99_lag_ms": p99,
            "max_lag_ms": worst,
            "delivered": in_window / (streams * seconds * 100),
            "cores": cpu / wall,
            "longest_gc_ms": pauses.longest_ms,
        }

    return asyncio.run(main())


def _asyncio_server() -> None:
    """Serve baseline runs over stdin/stdout: one line ``<frames>`` in, ``<wall> <cpu>
    <switches>`` out."""
    _asyncio_frames(200)  # warm-up: FFI init
    for line in sys.stdin:
        print(*_asyncio_frames(int(line)), flush=True)


# -- syncagents -------------------------------------------------------------------------------


def _syncagents_frames(frames: int) -> tuple[float, float, int]:
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

    t0, c0, s0 = time.perf_counter(), time.process_time(), _context_switches()
    c, p = gevent.spawn(consume), gevent.spawn(produce)
    gevent.joinall([c, p], raise_error=True)
    elapsed = time.perf_counter() - t0, time.process_time() - c0, _context_switches() - s0
    stream.close()
    src.close()
    return elapsed


def _with_tracer(fn: Callable[[], Any]) -> Any:
    """``fn()`` with the runtime's switch tracer installed (as in a worker), then without."""
    import greenlet

    from syncagents import runtime

    previous = greenlet.settrace(runtime.tracer._trace)
    try:
        return fn()
    finally:
        greenlet.settrace(previous)


def per_frame_cost(frames: int, rounds: int) -> dict[str, float]:
    import subprocess  # here, not at the top: syncagents must patch before it is imported

    base: list[tuple[float, float, int]] = []
    ours: list[tuple[float, float, int]] = []
    traced: list[tuple[float, float, int]] = []
    server = subprocess.Popen(
        [sys.executable, __file__, "--asyncio-server"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    assert server.stdin is not None and server.stdout is not None

    def baseline() -> None:
        server.stdin.write(f"{frames}\n")  # type: ignore[union-attr]
        server.stdin.flush()  # type: ignore[union-attr]
        wall, cpu, switches = server.stdout.readline().split()  # type: ignore[union-attr]
        base.append((float(wall), float(cpu), int(switches)))

    arms: list[Callable[[], None]] = [
        baseline,
        lambda: ours.append(_syncagents_frames(frames)),
        lambda: traced.append(_with_tracer(lambda: _syncagents_frames(frames))),
    ]
    try:
        _syncagents_frames(200)  # warm-up: FFI init, bridge thread
        for r in range(rounds):  # each arm goes first as often as the others
            for i in range(len(arms)):
                arms[(r + i) % len(arms)]()
    finally:
        server.stdin.close()
        server.wait(timeout=60)

    def best(runs: list[tuple[float, float, int]], i: int) -> float:
        return min(run[i] for run in runs) / frames * 1e6

    def pair_ratio(runs: list[tuple[float, float, int]], i: int) -> float:
        return statistics.median(a[i] / b[i] for a, b in zip(runs, base))

    def switches(runs: list[tuple[float, float, int]]) -> float:
        return statistics.median(run[2] for run in runs) / frames

    return {
        "asyncio_us": best(base, 0),
        "syncagents_us": best(ours, 0),
        "traced_us": best(traced, 0),
        "asyncio_cpu_us": best(base, 1),
        "syncagents_cpu_us": best(ours, 1),
        "traced_cpu_us": best(traced, 1),
        "ratio": best(ours, 0) / best(base, 0),
        "cpu_ratio": best(ours, 1) / best(base, 1),
        "traced_ratio": best(traced, 0) / best(base, 0),
        "traced_cpu_ratio": best(traced, 1) / best(base, 1),
        "median_pair_ratio": pair_ratio(ours, 0),
        "traced_median_pair_ratio": pair_ratio(traced, 0),
        "asyncio_switches_per_frame": switches(base),
        "syncagents_switches_per_frame": switches(ours),
    }


def tracer_cost(switches: int = 200_000) -> dict[str, float]:
    """The switch tracer's price per greenlet switch, without / with it / with it in a job."""
    import gevent
    import greenlet

    from syncagents import runtime

    def raw_us() -> float:  # two greenlets switching to each other, nothing else
        main = greenlet.getcurrent()

        def bounce() -> None:
            while True:
                main.switch()

        g = greenlet.greenlet(bounce)
        n = switches // 2
        t0 = time.perf_counter()
        for _ in range(n):
            g.switch()
        elapsed = time.perf_counter() - t0
        g.throw(greenlet.GreenletExit)
        return elapsed / (2 * n) * 1e6

    def gevent_per_s(spawn: Callable[..., Any] = gevent.spawn) -> float:
        per = switches // 20  # 10 greenlets; each sleep(0) is two switches (to the hub, back)

        def spin() -> None:
            for _ in range(per):
                gevent.sleep(0)

        t0 = time.perf_counter()
        gevent.joinall([spawn(spin) for _ in range(10)])
        return 10 * per * 2 / (time.perf_counter() - t0)

    if greenlet.gettrace() is not None:
        raise RuntimeError("a greenlet tracer is already installed: no figure without it")
    best = min  # the least disturbed of three runs: a property of the code, not of the noise
    plain = best(raw_us() for _ in range(3)), max(gevent_per_s() for _ in range(3))
    traced = _with_tracer(
        lambda: (best(raw_us() for _ in range(3)), max(gevent_per_s() for _ in range(3)))
    )
    scope = runtime.JobScope("bench")  # installs the tracer for good: measured last
    in_job = max(gevent_per_s(scope.spawn) for _ in range(3))
    scope.close()
    return {
        "raw_switch_us": plain[0],
        "raw_switch_traced_us": traced[0],
        "gevent_switches_per_s": plain[1],
        "gevent_switches_traced_per_s": traced[1],
        "gevent_switches_in_job_per_s": in_job,
    }


def streams_syncagents(streams: int, seconds: float) -> dict[str, float]:
    """``streams`` sources, each fed 10 ms frames at real time by a greenlet, read back by
    ``streams`` greenlets, for ``seconds`` of wall time (an overloaded machine delivers less)."""
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
    start = time.perf_counter()
    stop = start + seconds

    def producer(src: rtc.AudioSource) -> None:
        # real-time pace on the wall clock: frame k is due at start + k * 10 ms
        k = 0
        while True:
            due = start + k * 0.01
            if due >= stop or time.perf_counter() >= stop:
                return
            delay = due - time.perf_counter()
            if delay > 0:
                gevent.sleep(delay)
            src.capture_frame(rtc.AudioFrame(data, RATE, 1, SAMPLES), timeout=seconds + 30)
            k += 1

    def consumer(stream: rtc.AudioStream) -> None:
        for _ in stream:
            received[0] += 1

    def ticker() -> None:
        while True:
            t = time.perf_counter()
            gevent.sleep(0.005)
            lateness.append(time.perf_counter() - t - 0.005)

    with _GcPauses() as pauses:
        c0 = time.process_time()
        tk = gevent.spawn(ticker)
        consumers = [gevent.spawn(consumer, s) for _, s in pairs]
        gevent.joinall([gevent.spawn(producer, src) for src, _ in pairs], timeout=seconds + 30)
        in_window = received[0]
        wall = time.perf_counter() - start
        cpu = time.process_time() - c0
        tk.kill()
    for src, stream in pairs:
        stream.close()
        src.close()
    gevent.joinall(consumers, timeout=30)
    p99, worst = _lag_stats(lateness)
    return {
        "p99_lag_ms": p99,
        "max_lag_ms": worst,
        "delivered": in_window / (streams * seconds * 100),
        "cores": cpu / wall,
        "longest_gc_ms": pauses.longest_ms,
    }


def _freeze() -> None:
    import livekit.rtc  # noqa: F401  (the libraries' objects, frozen below)

    gc.collect()
    gc.freeze()


def _met(ok: bool) -> str:
    return "met" if ok else "MISSED"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--asyncio-server", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--asyncio-streams", type=int, default=0, help=argparse.SUPPRESS)
    # many short runs: on a shared machine the best of many is the one other work left alone
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=40)
    ap.add_argument("--streams", type=int, nargs="*", default=[50, 200])
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--gc-freeze", action="store_true")
    args = ap.parse_args()
    if (args.asyncio_server or args.asyncio_streams) and args.gc_freeze:
        _freeze()
    if args.asyncio_server:
        _asyncio_server()
        return
    if args.asyncio_streams:
        print(json.dumps(_asyncio_streams(args.asyncio_streams, args.seconds)))
        return

    import subprocess

    import syncagents  # noqa: F401  (patches gevent; the asyncio processes never import it)

    if args.gc_freeze:
        _freeze()

    results: dict[str, Any] = {}
    cost = results["per_frame"] = per_frame_cost(args.frames, args.rounds)
    print(
        f"per-frame source->stream burst ({args.frames} frames, best of {args.rounds}): "
        f"asyncio {cost['asyncio_us']:.0f} us, syncagents {cost['syncagents_us']:.0f} us: "
        f"ratio {cost['ratio']:.2f} wall, {cost['cpu_ratio']:.2f} CPU "
        f"(goal <= {PER_FRAME_GOAL}: {_met(cost['ratio'] <= PER_FRAME_GOAL)}); "
        f"median of pairs {cost['median_pair_ratio']:.2f}; voluntary context switches per "
        f"frame {cost['asyncio_switches_per_frame']:.1f} vs "
        f"{cost['syncagents_switches_per_frame']:.1f}"
    )
    print(
        f"  with the switch tracer installed: {cost['traced_us']:.0f} us, ratio "
        f"{cost['traced_ratio']:.2f} wall, {cost['traced_cpu_ratio']:.2f} CPU; median of pairs "
        f"{cost['traced_median_pair_ratio']:.2f}"
    )
    for n in args.streams:
        ours = streams_syncagents(n, args.seconds)
        out = subprocess.run(
            [sys.executable, __file__, "--asyncio-streams", str(n), "--seconds",
             str(args.seconds)] + (["--gc-freeze"] if args.gc_freeze else []),
            capture_output=True, text=True, check=True, timeout=args.seconds + 300,
        )
        peer = json.loads(out.stdout.strip().splitlines()[-1])
        results[f"streams_{n}"] = {"syncagents": ours, "asyncio": peer}
        goal = f" (goal max < {HUB_LAG_GOAL_MS:.0f}: {_met(ours['max_lag_ms'] < HUB_LAG_GOAL_MS)})"
        print(
            f"{n} real-time 10 ms streams for {args.seconds:g} s: syncagents hub lag p99 "
            f"{ours['p99_lag_ms']:.1f} ms, max {ours['max_lag_ms']:.1f} ms{goal}, "
            f"{ours['delivered'] * 100:.0f}% of real time delivered, {ours['cores']:.2f} cores, "
            f"longest GC {ours['longest_gc_ms']:.0f} ms | plain asyncio loop lag p99 "
            f"{peer['p99_lag_ms']:.1f} ms, max {peer['max_lag_ms']:.1f} ms, "
            f"{peer['delivered'] * 100:.0f}% delivered, {peer['cores']:.2f} cores, longest GC "
            f"{peer['longest_gc_ms']:.0f} ms"
        )
    tc = results["tracer"] = tracer_cost()
    print(
        f"switch tracer: raw greenlet switch {tc['raw_switch_us']:.3f} us -> "
        f"{tc['raw_switch_traced_us']:.3f} us with it; gevent switches "
        f"{tc['gevent_switches_per_s'] / 1e6:.2f} M/s -> "
        f"{tc['gevent_switches_traced_per_s'] / 1e6:.2f} M/s with it, "
        f"{tc['gevent_switches_in_job_per_s'] / 1e6:.2f} M/s inside a job scope"
    )
    print(json.dumps(results))


if __name__ == "__main__":
    main()
