"""``syncagents console``: run an agent's entrypoint against a local room, no server.

A remote participant ``user`` publishes the input (a WAV file at real-time pace, or the
microphone) and sends each ``--text`` as a chat message; what the agent publishes goes to a
WAV file (on the real-time timeline, silence included) and/or the speaker. The conversation
is printed as it happens, one line per final transcript (``user: ...`` / ``agent: ...``).
It ends once the input has ended, no user turn is pending and the agent has been silent for
``idle_s`` seconds.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

import gevent
import gevent.event
import gevent.pool
from loguru import logger

from ..job import JobContext, JobResult, make_job, run_job
from ..runtime import enable_hub_block_detection
from ..testing.local_room import LocalRoom
from .feeder import InputFeeder, load_input
from .recorder import AgentRecorder

__all__ = ["ConsoleResult", "run_console"]

# how often the console re-checks its end condition (a time-based condition, not a race)
_CHECK_S = 0.05


class ConsoleResult:
    def __init__(self, exit_code: int, job: JobResult | None, transcript: list[tuple[str, str]]):
        self.exit_code = exit_code
        self.job = job
        self.transcript = transcript


class _Printer:
    """Prints each final transcript segment once, as ``<who>: <text>``."""

    def __init__(self, room: LocalRoom, out: TextIO) -> None:
        self._room = room
        self._out = out
        self._seen: set[str] = set()
        self.lines: list[tuple[str, str]] = []
        self.last_user_line_at: float | None = None

    def on_transcription(self, transcription: Any) -> None:
        who = "user" if transcription.participant_identity == self._room.user.identity else "agent"
        for segment in transcription.segments:
            if not segment.final or segment.id in self._seen or not segment.text.strip():
                continue
            self._seen.add(segment.id)
            self.line(who, segment.text.strip())

    def line(self, who: str, text: str) -> None:
        self.lines.append((who, text))
        if who == "user":
            self.last_user_line_at = time.monotonic()
        print(f"{who}: {text}", file=self._out, flush=True)


def _assistants_busy(room: LocalRoom) -> bool:
    for assistant in room.assistants:
        for flag in ("agent_speaking", "user_turn_pending", "user_speaking"):
            if getattr(assistant, flag, False):
                return True
    return False


def run_console(
    entrypoint: Callable[[JobContext], Any],
    *,
    prewarm: Callable[[], Any] | None = None,
    input_path: str | None = None,
    mic: bool = False,
    output_path: str | None = None,
    speaker: bool = False,
    texts: tuple[str, ...] | list[str] = (),
    idle_s: float = 2.0,
    max_duration: float | None = None,
    max_blocking_ms: float | None = None,
    out: TextIO | None = None,
) -> ConsoleResult:
    """Run ``entrypoint`` in a local room until the conversation is over; see the module doc.

    ``max_duration`` (seconds) bounds the whole run (None: unbounded, as with ``--mic``).
    ``max_blocking_ms`` turns on hub-block warnings once the app is loaded and prewarmed
    (loading blocks by nature and stalls nobody yet).
    """
    out = out or sys.stdout
    group = gevent.pool.Group()  # the console's own greenlets, killed on the way out
    frames = load_input(input_path) if input_path else []
    room = LocalRoom()
    printer = _Printer(room, out)
    room.transcription_listeners.append(printer.on_transcription)
    speaker_dev = None
    if speaker:
        from .devices import Speaker

        speaker_dev = Speaker(24000)
    recorder = AgentRecorder(
        output_path, sink=speaker_dev.write if speaker_dev is not None else None
    )
    room.track_listeners.append(recorder.attach)
    connected = gevent.event.Event()
    room.on("connected", lambda: connected.set())

    userdata = prewarm() if prewarm is not None else None
    if max_blocking_ms is not None and max_blocking_ms > 0:
        enable_hub_block_detection(max_blocking_ms)
    ctx = JobContext(make_job("console", participant_identity=room.user.identity), room=room,
                     userdata=userdata)
    job = group.spawn(run_job, ctx, entrypoint)
    started = time.monotonic()
    result: JobResult | None = None
    exit_code = 0
    try:
        # the user starts talking once the agent is in the room
        while not connected.wait(_CHECK_S):
            if job.ready():
                break
            if max_duration is not None and time.monotonic() - started > max_duration:
                raise TimeoutError(f"the agent did not join the room within {max_duration} s")
        feeder = InputFeeder(room.user_source)
        if mic:
            from .devices import Microphone

            microphone = Microphone(room.user_source)
            group.spawn(microphone.run)
        elif frames:
            group.spawn(feeder.play, frames)
        else:
            group.spawn(feeder.silence_only)
        pending_texts = list(texts)
        busy_until = time.monotonic()
        while not job.ready():
            now = time.monotonic()
            if max_duration is not None and now - started > max_duration:
                logger.warning("console: stopping after --max-duration {:.0f} s", max_duration)
                break
            if _assistants_busy(room) or (
                recorder.last_voice_at is not None and recorder.last_voice_at > busy_until
            ):
                busy_until = max(now, recorder.last_voice_at or now)
            input_done = feeder.ended.is_set() and not mic
            if input_done and now - busy_until >= idle_s:
                if not pending_texts:
                    break
                text = pending_texts.pop(0)
                printer.line("user", text)
                room.send_chat(text)
                busy_until = now
            gevent.sleep(_CHECK_S)
        ctx.shutdown("console finished")
        result = job.get(timeout=30)
        if result is not None and result.failed:
            print(f"error: the agent failed: {result.error}", file=sys.stderr, flush=True)
            exit_code = 1
    finally:
        group.kill(block=True, timeout=5)
        recorder.close()
        room.close()
        if speaker_dev is not None:
            speaker_dev.close()
    return ConsoleResult(exit_code, result, printer.lines)
