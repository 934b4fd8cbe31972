"""Voice to voice with the offline plugins, through the console: user stops speaking → first
agent audio on the console's output timeline.

The agent is ``examples/echo_agent.py`` as the README's quick start runs it (silero VAD,
streaming pocketsphinx STT, espeak TTS, an LLM that answers at once), with the
VoiceAssistant's defaults (``min_endpointing_delay=0.5``, preemptive synthesis). The users
are generated: each conversation is a few sentences spoken by espeak (``tests/speech.py``)
in one voice and speed, said one after the other by ``run_console``, the machinery of
``syncagents console`` (each input once the agent answered the one before and was quiet).

Per turn, in ms after the user's speech ended as the assistant saw it (where the VAD last
heard speech; ``TurnMetrics``): the final transcript, the VAD's END_OF_SPEECH report, the
LLM's first token, the TTS's first frame, the endpoint (the end of the endpointing wait) and
the first frame handed to the agent's audio source (playout start), and what the endpoint
waited for last (``VAD``: its END_OF_SPEECH report, ``STT``: the final transcript,
``delay``: the endpointing delay itself). Then ``total``: from the
end of the user's audio (the console's input timeline: the last frame with sound in it, as
played) to the first agent audio on the console's output timeline (what a listener hears) —
the goal's figure — and ``vad-audio``: how far the VAD's idea of the speech end is from the
audio's. ``decode RTF wall/cpu``: pocketsphinx's decode steps over the utterance's last two
seconds, seconds of wall time and of its thread's CPU time per second of audio: a wall RTF
near or above 1 with a much lower CPU RTF means its thread was waiting for a core.
Goal: total p50 <= 800 ms, max <= 1200 ms.

Real time (per conversation, and at worst): ``user audio late``, how late a frame of the user's
audio reached the room against its real-time schedule (frame n due n x 10 ms after the
microphone opened; the source's 100 ms queue runs ahead of it, so on pace this is <= 0), and
``agent audio misplaced``, how far from where it played (as it came out of the agent's track)
a frame of the agent's audio was written in the console's output. Goal: both < 20 ms.

Run: ``python bench/voice.py [--conversations 3] [--turns 5]``. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples"))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

# isort: off
import syncagents  # noqa: F401  (patches gevent before anything else loads)
# isort: on
import echo_agent  # examples/echo_agent.py
import numpy as np
import speech  # tests/speech.py
from loguru import logger

from syncagents.console import Turn, run_console
from syncagents.console.feeder import UserAudio, audio_from_samples
from syncagents.job import JobContext
from syncagents.testing.local_room import USER_RATE
from syncagents.voice_assistant import TurnMetrics

P50_GOAL_MS = 800.0
MAX_GOAL_MS = 1200.0
DRIFT_GOAL_MS = 20.0
# (conversation, seconds it ran, user audio late s, agent audio misplaced s)
DRIFT: list[tuple[int, float, float, float]] = []

SENTENCES = [
    "Hello there. What is the weather like today?",
    "Can you tell me what time it is?",
    "I would like to book a table for two people.",
    "What is the capital of France?",
    "Please turn on the lights in the kitchen.",
    "How long does it take to drive to the airport?",
    "Thank you very much, that is all for now.",
    "Could you read me my messages?",
]
# (espeak voice, words per minute) of each conversation's user
VOICES = [("en-us", 175), ("en", 160), ("en-us", 195), ("en", 180)]


@dataclass
class Row:
    """One user turn: the assistant's figures and the console's."""

    conversation: int
    turn: Turn
    metrics: TurnMetrics | None
    vad_vs_audio: float | None  # VAD's speech end - the audio's speech end (s)
    decode: tuple[float, float] | None = None  # pocketsphinx (wall, cpu) RTF up to the final


class DecodeProfile:
    """pocketsphinx's decode steps, timed on their native thread: wall time and the thread's
    own CPU time per second of audio decoded. A turn that waited for its transcript while
    decoding ran slower than real time (wall RTF > 1) with a CPU RTF well below it had its
    decoder thread waiting for a core: the machine was busy with other work.

    It wraps the plugin's decode limiter (an internal: if that moves, the columns say "-")."""

    def __init__(self) -> None:
        self.steps: list[tuple[float, float, float, float]] = []  # end, wall, cpu, audio (s)
        self.installed = False

    def install(self) -> None:
        try:
            from syncagents.plugins.pocketsphinx._decoder import decode_limiter
        except ImportError:
            return
        run = decode_limiter.run
        steps = self.steps

        def timed_run(fn: Any, *args: Any, **kwargs: Any) -> Any:
            timing: list[float] = []

            def timed(*a: Any, **k: Any) -> Any:  # on the native thread
                wall, cpu = time.perf_counter(), time.thread_time()
                try:
                    return fn(*a, **k)
                finally:
                    timing[:] = [time.perf_counter() - wall, time.thread_time() - cpu]

            result = run(timed, *args, **kwargs)
            audio = getattr(result, "decoded", 0) / (2 * 16000)  # bytes of 16 kHz int16
            if timing and audio > 0:
                steps.append((time.monotonic(), timing[0], timing[1], audio))
            return result

        decode_limiter.run = timed_run  # type: ignore[method-assign]
        self.installed = True

    def rtf(self, start: float, end: float) -> tuple[float, float] | None:
        """(wall, cpu) seconds per second of audio of the steps that ended in [start, end]."""
        picked = [s for s in self.steps if start <= s[0] <= end]
        audio = sum(s[3] for s in picked)
        if not picked or audio <= 0:
            return None
        return sum(s[1] for s in picked) / audio, sum(s[2] for s in picked) / audio


PROFILE = DecodeProfile()


class Probe:
    """Follows the assistant of the conversation: when each user turn was committed (and its
    text), and the metrics of each reply."""

    def __init__(self) -> None:
        self.commits: list[tuple[float, str]] = []
        self.metrics: list[TurnMetrics] = []

    def follow(self, assistant: Any) -> None:
        assistant.on("user_speech_committed", self._on_commit)
        assistant.on("metrics_collected", self.metrics.append)

    def _on_commit(self, message: Any) -> None:
        self.commits.append((time.monotonic(), str(message.content)))


def _utterance(text: str, voice: str, rate: int, name: str) -> UserAudio:
    samples = speech.speak(text, voice=voice, rate=rate, sample_rate=USER_RATE)
    # a little silence before, as from a microphone; the feeder plays silence after
    lead = np.zeros(int(0.3 * USER_RATE), dtype=np.int16)
    return audio_from_samples(np.concatenate([lead, samples]), name)


def conversation(index: int, turns: int) -> list[Row]:
    voice, rate = VOICES[index % len(VOICES)]
    texts = [SENTENCES[(index * turns + i) % len(SENTENCES)] for i in range(turns)]
    inputs: list[UserAudio | str] = [
        _utterance(text, voice, rate, f"c{index}t{i}") for i, text in enumerate(texts)
    ]
    probe = Probe()

    def entrypoint(ctx: JobContext) -> None:
        ctx.room.assistant_listeners.append(probe.follow)
        echo_agent.entrypoint(ctx)

    began = time.monotonic()
    result = run_console(
        entrypoint, prewarm=echo_agent.prewarm, inputs=inputs, idle_s=1.0, out=io.StringIO()
    )
    DRIFT.append(
        (index, time.monotonic() - began, result.input_late_s, result.output_misplaced_s)
    )
    if result.exit_code != 0:
        print(f"conversation {index}: console exit {result.exit_code} ({result.reason})")

    # a reply's metrics belong to the commit with its text (in order), and a commit to the
    # turn whose speech ended last before it
    commits = list(probe.commits)
    rows: list[Row] = []
    matched: dict[int, tuple[TurnMetrics, float]] = {}
    for m in probe.metrics:
        for k, (at, text) in enumerate(commits):
            if k not in matched and text == m.user_text:
                matched[k] = (m, at)
                break
    per_turn: dict[int, list[tuple[TurnMetrics, float]]] = {}
    ends = [t.speech_ended_at for t in result.turns]
    for k in sorted(matched):
        m, at = matched[k]
        owner = max((i for i, end in enumerate(ends) if end is not None and end <= at), default=-1)
        if owner >= 0:
            per_turn.setdefault(owner, []).append((m, at))
    for i, turn in enumerate(result.turns):
        found = per_turn.get(i, [])
        if len(found) > 1:
            print(f"conversation {index} turn {i}: the assistant made {len(found)} turns of it")
        if not found:
            rows.append(Row(index, turn, None, None))
            continue
        first, committed_at = found[0]
        vad_vs_audio = decode = None
        if turn.speech_ended_at is not None:
            # commit time - endpoint wait = the VAD's speech end, on the same clock
            vad_end = committed_at - first.end_of_utterance_delay
            vad_vs_audio = vad_end - turn.speech_ended_at
            # the decode steps of the utterance's last seconds, up to its final transcript
            final_at = vad_end + max(first.transcription_delay, 0.0)
            decode = PROFILE.rtf(turn.speech_ended_at - 2.0, final_at + 0.05)
        rows.append(Row(index, turn, first, vad_vs_audio, decode))
    return rows


def _ms(value: float | None) -> str:
    return "-" if value is None or value < 0 else f"{value * 1000:.0f}"


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def _waited_for(m: TurnMetrics | None) -> str:
    """What the endpoint waited for last: the VAD's END_OF_SPEECH report, the final
    transcript, or the endpointing delay itself."""
    if m is None or m.end_of_utterance_delay < 0:
        return "-"
    slack = 0.005
    if m.transcription_delay >= 0 and m.end_of_utterance_delay <= m.transcription_delay + slack:
        return "STT"
    if m.vad_report_delay >= 0 and m.end_of_utterance_delay <= m.vad_report_delay + slack:
        return "VAD"
    return "delay"


def report(rows: list[Row]) -> None:
    header = (
        "| conv | turn | heard | STT final | VAD end | LLM first token | TTS first frame | "
        "endpoint | waited for | playout start | total | vad-audio | decode RTF wall/cpu |"
    )
    print(header)
    print("|---" * 13 + "|")
    totals: list[float] = []
    columns: dict[str, list[float]] = {
        k: [] for k in ("stt", "vad", "llm", "tts", "endpoint", "playout")
    }
    for row in rows:
        m = row.metrics
        total = row.turn.latency
        if total is not None:
            totals.append(total * 1000)
        values = {
            "stt": m.transcription_delay if m else -1.0,
            "vad": m.vad_report_delay if m else -1.0,
            "llm": m.llm_first_token_delay if m else -1.0,
            "tts": m.tts_first_frame_delay if m else -1.0,
            "endpoint": m.end_of_utterance_delay if m else -1.0,
            "playout": m.e2e_latency if m else -1.0,
        }
        for key, value in values.items():
            if value >= 0:
                columns[key].append(value * 1000)
        heard = " ".join(row.turn.user_text.split()[:6])
        print(
            f"| {row.conversation} | {row.turn.input} | {heard} | {_ms(values['stt'])} | "
            f"{_ms(values['vad'])} | {_ms(values['llm'])} | {_ms(values['tts'])} | "
            f"{_ms(values['endpoint'])} | {_waited_for(m)} | {_ms(values['playout'])} | "
            f"{_ms(total)} | "
            f"{'-' if row.vad_vs_audio is None else f'{row.vad_vs_audio * 1000:+.0f}'} | "
            f"{'-' if row.decode is None else f'{row.decode[0]:.2f}/{row.decode[1]:.2f}'} |"
        )
    print()
    for name, key in (
        ("STT final", "stt"),
        ("VAD end of speech", "vad"),
        ("LLM first token", "llm"),
        ("TTS first frame", "tts"),
        ("endpoint", "endpoint"),
        ("playout start", "playout"),
    ):
        column = columns[key]
        print(f"  {name:20s} p50 {_pct(column, 50):6.0f} ms  max {max(column, default=0):6.0f} ms")
    missing = sum(1 for row in rows if row.turn.latency is None)
    p50, worst = _pct(totals, 50), max(totals, default=float("nan"))
    print(
        f"  {'total (as heard)':20s} p50 {p50:6.0f} ms  max {worst:6.0f} ms  over {len(totals)} "
        f"turns{f', {missing} without an answer' if missing else ''}"
    )
    met = bool(totals) and not missing and p50 <= P50_GOAL_MS and worst <= MAX_GOAL_MS
    print(
        f"  goal p50 <= {P50_GOAL_MS:.0f} ms, max <= {MAX_GOAL_MS:.0f} ms: "
        f"{'MET' if met else 'MISSED'}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--conversations", type=int, default=3)
    parser.add_argument("--turns", type=int, default=5, help="user turns per conversation")
    args = parser.parse_args()
    logger.remove()
    logger.add(sys.stderr, level="WARNING")
    PROFILE.install()
    rows: list[Row] = []
    started = time.monotonic()
    load_before = os.getloadavg()[0]
    cpu_before = time.process_time()
    for index in range(args.conversations):
        rows.extend(conversation(index, args.turns))
    elapsed = time.monotonic() - started
    print(
        f"voice to voice: {args.conversations} conversations x {args.turns} turns, "
        f"{elapsed:.0f} s; this process used {(time.process_time() - cpu_before) / elapsed:.0%} "
        f"of a core; machine load average {load_before:.1f} -> {os.getloadavg()[0]:.1f} "
        f"on {os.cpu_count()} cores\n"
    )
    report(rows)
    drift_report()


def drift_report() -> None:
    print()
    for index, seconds, late, misplaced in DRIFT:
        print(
            f"  conversation {index} ({seconds:.0f} s): user audio late {late * 1000:+.0f} ms "
            f"at worst, agent audio misplaced {misplaced * 1000:.0f} ms at worst"
        )
    worst_late = max((d[2] for d in DRIFT), default=0.0) * 1000
    worst_misplaced = max((d[3] for d in DRIFT), default=0.0) * 1000
    met = worst_late < DRIFT_GOAL_MS and worst_misplaced < DRIFT_GOAL_MS
    print(
        f"  real time: user audio late {worst_late:+.0f} ms, agent audio misplaced "
        f"{worst_misplaced:.0f} ms; goal < {DRIFT_GOAL_MS:.0f} ms: {'MET' if met else 'MISSED'}"
    )


if __name__ == "__main__":
    main()
