"""VoiceAssistant turn latencies with zero-latency fakes, over real local media.

Each assistant runs in its own ``LocalRoom``; its user speaks sine bursts at real-time pace
into a real ``LocalAudioTrack``. Every cycle (~5 s): the user speaks 0.5 s, the reply (~3 s)
starts, the user interrupts it after ~0.3 s with 0.8 s of speech, that speech becomes a turn
whose reply plays in full, then a short pause. Figures:

- endpoint → first agent frame: turn validated → first reply frame handed to the agent's
  ``AudioSource`` (``TurnMetrics.reply_delay``; goal p95 <= 15 ms);
- interruption → playout stopped: interruption decided → playout killed and the source's
  queue cleared (``TurnMetrics.interruption_delay``; goal <= 50 ms);
- hub lag: how late a 5 ms ticker greenlet wakes while everything runs (goal p99 <= 20 ms);
- also e2e (user stopped speaking → first agent frame; the VAD's 0.3 s of silence and the
  0.3 s endpointing delay overlap, so ~0.3 s is the floor here);
- late / stalled: a conversation waits at most 10 s for the assistant's next event; a wait
  longer than that is counted *late* and the conversation keeps waiting, so a slow process
  (a backlog) is told apart from a *stalled* one (the event never came before the phase
  ended) — the old figure "stalled" counted every 10 s timeout and stopped that user;
- CPU budget: CPU time per second of conversation, per thread kind, over the phase's steady
  state: the hub (every greenlet: the assistants and the users' scripts), the bridge's asyncio
  loop (livekit's Python side), livekit's tokio threads (native media work and its Python
  callbacks), its per-source audio pacing threads (native). The hub and the bridge loop
  share one GIL: their sum times N must stay well below 1000 ms per second.

Honest load: the users live in this process too (``LocalRoom``): their microphones are real
``AudioSource``s paced by native threads, their bursts are generated before the phase starts
(nothing is synthesized on the measured path), and only the bursts are captured (the track
plays silence in between). Their share of the CPU is in the figures. The conversations start
spread over ``--spread`` seconds (default: one cycle), as independent callers would; with
``--spread 0.5`` every user speaks in the same half second, every cycle (a synchronized
worst case, what the bench did before). Each phase also prints the load average and, over
its steady state, how busy the whole machine was and how much CPU other processes took: on a
shared machine the figures move with it. No assertions: numbers to compare between runs and
machines.

Run: ``python bench/turn.py [--assistants 10,25,50] [--duration 20] [--spread 5]
[--switch-interval S]``
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

# isort: off
import syncagents  # noqa: F401  (patches gevent before anything else loads)
# isort: on
import gevent
import gevent.event
import gevent.pool
import gevent.queue
import numpy as np
from loguru import logger

from syncagents import VoiceAssistant, _bridge, rtc
from syncagents.testing import FakeLLM, FakeSTT, FakeTTS, FakeVAD
from syncagents.testing.local_room import USER_RATE, LocalRoom
from syncagents.voice_assistant import TurnMetrics

REPLY_GOAL_MS = 15.0
INTERRUPT_GOAL_MS = 50.0
HUB_LAG_GOAL_MS = 20.0
FRAME = USER_RATE // 10  # 100 ms: the fixture's own capture cost stays small
ANSWER = "Sure. Here is a short answer for you, it takes a little over two seconds."
EVENT_WAIT = 10.0  # longer than this for the assistant's next event: the wait is "late"
CYCLE_S = 5.0  # about one user cycle (see the docstring): the default spread of the starts


def _tone_frames(seconds: float) -> list[Any]:
    n = round(seconds * USER_RATE)
    wave = (np.sin(2 * math.pi * 440.0 * np.arange(n) / USER_RATE) * 0.3 * 32767).astype(np.int16)
    return [
        rtc.AudioFrame(wave[i : i + FRAME].tobytes(), USER_RATE, 1, len(wave[i : i + FRAME]))
        for i in range(0, n, FRAME)
    ]


class Stalled(Exception):
    """The assistant's next event never came before the phase ended."""


class Conversation:
    def __init__(self, results: dict[str, list[float]], short: list[Any], long: list[Any]) -> None:
        self.results = results
        self.room = LocalRoom(user_queue_ms=100)
        self.room.connect()
        self.events: gevent.queue.Queue[str] = gevent.queue.Queue()
        self.assistant = VoiceAssistant(
            vad=FakeVAD(),
            stt=FakeSTT(lambda frames, language: "hello there"),
            llm=FakeLLM(responder=lambda ctx: ANSWER),
            tts=FakeTTS(sample_rate=24000, seconds_per_char=0.04),
            min_endpointing_delay=0.3,
        )
        for name in ("agent_started_speaking", "agent_speech_interrupted",
                     "agent_speech_committed"):
            self.assistant.on(name, self._recorder(name))  # type: ignore[arg-type]
        self.assistant.on("metrics_collected", self._on_metrics)
        self.assistant.start(self.room)
        self.short = short
        self.long = long
        self.deadline = math.inf  # when a wait gives up for good (set by run)

    def _recorder(self, name: str) -> Any:
        return lambda *args: self.events.put(name)

    def _on_metrics(self, m: TurnMetrics) -> None:
        if m.reply_delay >= 0:
            self.results["reply"].append(m.reply_delay * 1000)
        if m.e2e_latency >= 0:
            self.results["e2e"].append(m.e2e_latency * 1000)
        if m.interrupted and m.interruption_delay >= 0:
            self.results["interrupt"].append(m.interruption_delay * 1000)

    def _wait(self, *names: str) -> str:
        start = time.monotonic()
        late = False
        while True:
            now = time.monotonic()
            limit = start + EVENT_WAIT if not late else self.deadline
            try:
                got = self.events.get(timeout=max(0.0, limit - now))
            except gevent.queue.Empty:
                if late or now >= self.deadline:
                    raise Stalled() from None
                late = True  # a backlog, not (yet) a stall: keep waiting until the end
                continue
            if got in names:
                if late:
                    self.results["late"].append(time.monotonic() - start)
                return got

    def _say(self, frames: list[Any]) -> None:
        for frame in frames:
            try:
                self.room.user_source.capture_frame(frame, timeout=EVENT_WAIT)
            except TimeoutError:  # the user's own microphone did not move for 10 s
                self.results["mic_blocked"].append(1.0)
                raise Stalled() from None

    def run(self, until: float, grace: float) -> None:
        self.deadline = until + grace
        try:
            while time.monotonic() < until:
                self._say(self.short)
                self._wait("agent_started_speaking")
                gevent.sleep(0.3)  # let the reply be heard a little (a script, not a race)
                self._say(self.long)
                # interrupted, normally; under heavy load the reply may have ended first
                self._wait("agent_speech_interrupted", "agent_speech_committed")
                self._wait("agent_speech_committed")  # the reply to the interruption
                gevent.sleep(0.3)
        except Stalled:
            self.results["stalled"].append(1.0)

    def close(self) -> None:
        self.assistant.close()
        self.room.close()


def _ticker(lateness: list[float], stop: gevent.event.Event) -> None:
    while not stop.is_set():
        t = time.perf_counter()
        gevent.sleep(0.005)
        lateness.append((time.perf_counter() - t - 0.005) * 1000)


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


# -- CPU accounting (Linux /proc; elsewhere the budget is not printed) ---------------------------


def _thread_cpu() -> dict[int, tuple[str, float]]:
    """Native thread id → (thread name, CPU seconds so far) for every thread of this process."""
    out: dict[int, tuple[str, float]] = {}
    tick = os.sysconf("SC_CLK_TCK")
    try:
        tids = os.listdir("/proc/self/task")
    except OSError:
        return out
    for tid in tids:
        try:
            with open(f"/proc/self/task/{tid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            with open(f"/proc/self/task/{tid}/comm") as f:
                name = f.read().strip()
        except OSError:  # the thread ended meanwhile
            continue
        out[int(tid)] = (name, (int(fields[11]) + int(fields[12])) / tick)
    return out


def _machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far (/proc/stat), all cores."""
    try:
        with open("/proc/stat") as f:
            # user nice system idle iowait irq softirq steal (guest time is inside user)
            fields = [float(x) for x in f.readline().split()[1:9]]
    except (OSError, ValueError):
        return (0.0, 0.0)
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)  # idle + iowait
    tick = float(os.sysconf("SC_CLK_TCK"))
    return ((sum(fields) - idle) / tick, sum(fields) / tick)


def _loop_thread_id() -> int:
    async def native_id() -> int:
        return threading.get_native_id()

    return _bridge.run(native_id(), timeout=5)


def _cpu_by_kind(
    before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]], loop_tid: int
) -> dict[str, float]:
    hub_tid = threading.main_thread().native_id
    kinds: dict[str, float] = {}
    for tid, (name, cpu) in after.items():
        spent = cpu - before.get(tid, (name, 0.0))[1]
        if tid == hub_tid:
            kind = "hub"
        elif tid == loop_tid:
            kind = "bridge loop"
        elif name.startswith("tokio"):
            kind = "livekit tokio"
        elif name.startswith("AudioSource"):
            kind = "audio pacing"
        else:
            kind = "other"
        kinds[kind] = kinds.get(kind, 0.0) + spent
    return kinds


def phase(assistants: int, duration: float, spread: float) -> dict[str, Any]:
    results: dict[str, Any] = {"reply": [], "interrupt": [], "e2e": [], "lag": [],
                               "stalled": [], "late": [], "mic_blocked": []}
    short, long = _tone_frames(0.5), _tone_frames(0.8)  # the users' speech, made up front
    conversations = [Conversation(results, short, long) for _ in range(assistants)]
    loop_tid = _loop_thread_id()
    stop = gevent.event.Event()
    ticker = gevent.spawn(_ticker, results["lag"], stop)
    group = gevent.pool.Group()
    started = time.monotonic()
    until = started + duration
    for i, conv in enumerate(conversations):
        delay = i * spread / max(1, assistants)
        group.add(gevent.spawn_later(delay, conv.run, until, 30.0))

    # CPU over the steady state: every conversation started, and not yet winding down
    cpu: dict[str, Any] = {}

    def sample_cpu() -> None:
        warm = min(spread + 1.0, duration / 2)
        gevent.sleep(max(0.0, started + warm - time.monotonic()))
        t0, c0, m0 = time.monotonic(), _thread_cpu(), _machine_busy()
        gevent.sleep(max(0.0, until - 0.5 - time.monotonic()))
        cpu["seconds"] = time.monotonic() - t0
        cpu["kinds"] = _cpu_by_kind(c0, _thread_cpu(), loop_tid)
        m1 = _machine_busy()
        cpu["machine"] = (m1[0] - m0[0], m1[1] - m0[1])

    sampler = gevent.spawn(sample_cpu)
    group.join(timeout=duration + 40)
    stop.set()
    ticker.join(timeout=5)
    sampler.join(timeout=5)
    for conv in conversations:
        conv.close()
    results["cpu"] = cpu
    results["assistants"] = assistants
    return results


def _verdict(value: float, goal: float) -> str:
    return "met" if value <= goal else "MISSED"


def report(title: str, r: dict[str, Any]) -> None:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"\n{title}  (load average {load:.1f} on {os.cpu_count()} cores)")
    rows = [
        ("endpoint -> first agent frame", r["reply"], REPLY_GOAL_MS, 95),
        ("interruption -> playout stopped", r["interrupt"], INTERRUPT_GOAL_MS, 95),
        ("user stopped -> first agent frame (e2e)", r["e2e"], None, 95),
        ("hub lag (5 ms ticker)", r["lag"], HUB_LAG_GOAL_MS, 99),
    ]
    for name, values, goal, q in rows:
        value = _pct(values, q)
        goal_txt = f"  goal p{q} <= {goal:.0f} ms: {_verdict(value, goal)}" if goal else ""
        print(
            f"  {name:42s} n={len(values):5d}  p50 {_pct(values, 50):7.2f} ms  "
            f"p{q} {value:7.2f} ms  max {max(values, default=float('nan')):7.2f} ms"
            f"{goal_txt}"
        )
    late = r["late"]
    print(
        f"  waits > {EVENT_WAIT:.0f} s for the assistant's next event (late): {len(late)}"
        + (f", longest {max(late):.1f} s" if late else "")
        + f"; conversations stalled (event never came): {len(r['stalled'])}"
        + (f" (the user's microphone blocked in {len(r['mic_blocked'])})"
           if r["mic_blocked"] else "")
        + "  goal 0: " + ("met" if not r["stalled"] else "MISSED")
    )
    cpu = r.get("cpu") or {}
    if cpu.get("kinds") and cpu.get("seconds", 0) > 0:
        n, secs = r["assistants"], cpu["seconds"]
        per = {k: v / secs / n * 1000 for k, v in cpu["kinds"].items()}  # ms per conv-second
        parts = ", ".join(
            f"{k} {per.get(k, 0.0):.1f}"
            for k in ("hub", "bridge loop", "livekit tokio", "audio pacing", "other")
        )
        gil = (per.get("hub", 0.0) + per.get("bridge loop", 0.0)) * n
        total = sum(per.values()) * n
        print(f"  CPU per second of conversation (ms): {parts}")
        busy, all_cpu = cpu.get("machine", (0.0, 0.0))
        others = ""
        if all_cpu > 0:
            # what the rest of the machine took meanwhile: on a shared machine the figures
            # above move with it
            others = (
                f"; the machine was {busy / all_cpu * 100:.0f}% busy, other processes "
                f"{max(0.0, busy / secs * 1000 - total):.0f} ms/s"
            )
        print(
            f"  x {n}: hub + bridge loop (one GIL) {gil:.0f} ms/s of 1000; whole process "
            f"{total:.0f} ms/s of {1000 * (os.cpu_count() or 1)}{others}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--assistants", default="10,25,50",
        help="comma-separated phase sizes, run one after the other (default 10,25,50)",
    )
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument(
        "--spread", type=float, default=CYCLE_S,
        help="seconds over which the conversations start (default: one ~5 s cycle, as "
        "independent callers; 0.5 puts every user's speech in the same half second)",
    )
    parser.add_argument(
        "--switch-interval",
        type=float,
        default=None,
        help="sys.setswitchinterval() for the run (Python's default is 0.005 s): how long a "
        "thread waiting for the GIL lets the running one go on (the hub shares the GIL with "
        "the bridge loop and livekit's callback threads)",
    )
    args = parser.parse_args()
    logger.remove()
    logger.add(sys.stderr, level="WARNING")
    if args.switch_interval:
        sys.setswitchinterval(args.switch_interval)
    print(
        f"turn.py: {args.duration:.0f} s per phase, starts spread over {args.spread:.1f} s, "
        f"switch interval {sys.getswitchinterval() * 1000:.1f} ms"
    )
    report("1 assistant", phase(1, min(args.duration, 10.0), 0.0))
    for n in (int(x) for x in args.assistants.split(",") if x.strip()):
        report(f"{n} assistants in one process", phase(n, args.duration, args.spread))


if __name__ == "__main__":
    main()
