"""VoiceAssistant turn latencies with zero-latency fakes, over real local media.

Each assistant runs in its own ``LocalRoom``; its user speaks sine bursts at real-time pace
into a real ``LocalAudioTrack``. Every cycle: the user speaks 0.5 s, the reply (~3 s) starts,
the user interrupts it after ~0.3 s with 0.8 s of speech, that speech becomes a turn whose
reply plays in full, then a short pause. Figures:

- endpoint → first agent frame: turn validated → first reply frame handed to the agent's
  ``AudioSource`` (``TurnMetrics.reply_delay``; goal p95 <= 15 ms);
- interruption → playout stopped: interruption decided → playout killed and the source's
  queue cleared (``TurnMetrics.interruption_delay``; goal <= 50 ms);
- hub lag: how late a 5 ms ticker greenlet wakes while everything runs (goal < 20 ms);
- also e2e (user stopped speaking → first agent frame; includes the VAD's 0.3 s of silence
  and the 0.3 s endpointing delay, so ~0.6 s is the floor here).

Phases: one assistant alone, then ``--assistants`` (default 50) concurrently in this process.
The users only capture their bursts (the local track plays silence in between), which keeps
the fixture's own cost low. No assertions: numbers to compare between runs and machines.

Run: ``python bench/turn.py [--assistants 50] [--duration 20] [--switch-interval S]``
"""

from __future__ import annotations

import argparse
import math
import sys
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

from syncagents import VoiceAssistant, rtc
from syncagents.testing import FakeLLM, FakeSTT, FakeTTS, FakeVAD
from syncagents.testing.local_room import USER_RATE, LocalRoom
from syncagents.voice_assistant import TurnMetrics

REPLY_GOAL_MS = 15.0
INTERRUPT_GOAL_MS = 50.0
HUB_LAG_GOAL_MS = 20.0
FRAME = USER_RATE // 10  # 100 ms: the fixture's own capture cost stays small
ANSWER = "Sure. Here is a short answer for you, it takes a little over two seconds."


def _tone_frames(seconds: float) -> list[Any]:
    n = round(seconds * USER_RATE)
    wave = (np.sin(2 * math.pi * 440.0 * np.arange(n) / USER_RATE) * 0.3 * 32767).astype(np.int16)
    return [
        rtc.AudioFrame(wave[i : i + FRAME].tobytes(), USER_RATE, 1, len(wave[i : i + FRAME]))
        for i in range(0, n, FRAME)
    ]


class Conversation:
    def __init__(self, results: dict[str, list[float]]) -> None:
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
        self.short = _tone_frames(0.5)
        self.long = _tone_frames(0.8)

    def _recorder(self, name: str) -> Any:
        return lambda *args: self.events.put(name)

    def _on_metrics(self, m: TurnMetrics) -> None:
        if m.reply_delay >= 0:
            self.results["reply"].append(m.reply_delay * 1000)
        if m.e2e_latency >= 0:
            self.results["e2e"].append(m.e2e_latency * 1000)
        if m.interrupted and m.interruption_delay >= 0:
            self.results["interrupt"].append(m.interruption_delay * 1000)

    def _wait(self, *names: str, timeout: float = 10.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            got = self.events.get(timeout=max(0.0, deadline - time.monotonic()))
            if got in names:
                return got

    def _say(self, frames: list[Any]) -> None:
        for frame in frames:
            self.room.user_source.capture_frame(frame, timeout=5)

    def run(self, until: float) -> None:
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
        except gevent.queue.Empty:
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


def phase(assistants: int, duration: float) -> dict[str, list[float]]:
    results: dict[str, list[float]] = {"reply": [], "interrupt": [], "e2e": [], "lag": [],
                                       "stalled": []}
    conversations = [Conversation(results) for _ in range(assistants)]
    stop = gevent.event.Event()
    ticker = gevent.spawn(_ticker, results["lag"], stop)
    group = gevent.pool.Group()
    until = time.monotonic() + duration
    for i, conv in enumerate(conversations):
        # staggered starts, so the users do not all speak in the same 20 ms
        delay = i * 0.5 / max(1, assistants)
        group.add(gevent.spawn_later(delay, conv.run, until))
    group.join(timeout=duration + 30)
    stop.set()
    ticker.join(timeout=5)
    for conv in conversations:
        conv.close()
    return results


def report(title: str, r: dict[str, list[float]]) -> None:
    print(f"\n{title}")
    rows = [
        ("endpoint -> first agent frame", r["reply"], REPLY_GOAL_MS, 95),
        ("interruption -> playout stopped", r["interrupt"], INTERRUPT_GOAL_MS, 95),
        ("user stopped -> first agent frame (e2e)", r["e2e"], None, 95),
        ("hub lag (5 ms ticker)", r["lag"], HUB_LAG_GOAL_MS, 99),
    ]
    for name, values, goal, q in rows:
        goal_txt = f"  goal p{q} <= {goal:.0f} ms" if goal else ""
        print(
            f"  {name:42s} n={len(values):5d}  p50 {_pct(values, 50):7.2f} ms  "
            f"p{q} {_pct(values, q):7.2f} ms  max {max(values, default=float('nan')):7.2f} ms"
            f"{goal_txt}"
        )
    if r["stalled"]:
        print(f"  conversations that stalled waiting for an event: {len(r['stalled'])}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--assistants", type=int, default=50)
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument(
        "--switch-interval",
        type=float,
        default=None,
        help="sys.setswitchinterval() for the run (Python's default is 0.005 s): how long a "
        "thread waiting for the GIL lets the running one go on (the hub shares the GIL with "
        "the bridge loop and livekit's callback threads)",
    )
    args = parser.parse_args()
    if args.switch_interval:
        sys.setswitchinterval(args.switch_interval)
    logger.remove()
    logger.add(sys.stderr, level="WARNING")
    report("1 assistant", phase(1, min(args.duration, 10.0)))
    report(f"{args.assistants} assistants in one process", phase(args.assistants, args.duration))


if __name__ == "__main__":
    main()
