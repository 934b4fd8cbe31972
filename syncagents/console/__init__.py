"""``syncagents console``: run an agent's entrypoint against a local room, no server.

A remote participant ``user`` speaks the inputs (audio files at real-time pace, or the
microphone) and sends chat messages (``--text``, or lines typed on stdin in text mode), each
after the agent answered the previous one; what the agent publishes goes to a WAV file (on the
real-time timeline, silence included) and/or the speaker. The conversation is printed as it
happens, one line per transcript (``user: ...`` / ``agent: ...``) plus a ``latency: N ms`` line
per answered turn. It ends once the inputs are over, no user turn is pending and the agent has
been silent for ``idle_s`` seconds (see :mod:`syncagents.console.session`), or when the job
ends. ``syncagents.testing.converse`` runs the same machinery for tests.
"""

from __future__ import annotations

import collections
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

import gevent
import gevent.event
import gevent.pool
from loguru import logger

from ..job import JobContext, JobResult, make_job, run_job
from ..runtime import enable_hub_block_detection
from ..testing.local_room import LocalRoom
from .feeder import InputError, UserAudio, load_audio
from .session import ConsoleSession, Stopped, Turn
from .text_input import LineReader

__all__ = [
    "ConsoleResult",
    "ConsoleSession",
    "InputError",
    "LineReader",
    "Turn",
    "UserAudio",
    "load_audio",
    "run_console",
]

EXIT_INTERRUPTED = 130  # 128 + SIGINT, what shells report for Ctrl-C
_JOB_END_TIMEOUT = 30.0
USER_LEAD_MS = 500


@dataclass
class ConsoleResult:
    """How a console run went.

    ``exit_code``: 0, 1 (the agent failed) or 130 (interrupted); ``job``: how the job ended;
    ``transcript``: the ``(who, text)`` lines; ``turns``: one :class:`Turn` per input;
    ``greeting``: what the agent said before the first input; ``reason``: why it ended
    (``done``, ``job ended``, ``timeout``, ``interrupted``). Real-time pace:
    ``input_late_s``, how late the user's audio reached the room against its schedule at
    worst; ``output_misplaced_s``, how far from where it played agent audio was written.
    """

    exit_code: int
    job: JobResult | None
    transcript: list[tuple[str, str]]
    turns: list[Turn] = field(default_factory=list)
    greeting: str = ""
    reason: str = "done"
    input_late_s: float = 0.0
    output_misplaced_s: float = 0.0


class _LazySpeaker:
    """The speaker, opened at the rate of the first frame (the agent track's rate)."""

    def __init__(self) -> None:
        self._device: Any = None

    def write(self, frame: Any) -> None:
        """Play ``frame`` (mono int16)."""
        if self._device is None:
            from .devices import Speaker

            self._device = Speaker(frame.sample_rate)
        self._device.write(frame)

    def close(self) -> None:
        """Close the device if it was opened."""
        if self._device is not None:
            self._device.close()


def run_console(
    entrypoint: Callable[[JobContext], Any],
    *,
    prewarm: Callable[[], Any] | None = None,
    input_path: str | None = None,
    mic: bool = False,
    output_path: str | None = None,
    speaker: bool = False,
    texts: Sequence[str] = (),
    inputs: Sequence[UserAudio | str] | None = None,
    lines: LineReader | None = None,
    echo_lines: bool = True,
    idle_s: float = 2.0,
    max_duration: float | None = None,
    max_blocking_ms: float | None = None,
    stop: gevent.event.Event | None = None,
    out: TextIO | None = None,
) -> ConsoleResult:
    """Run ``entrypoint`` in a local room until the conversation is over; see the module doc.

    The user says ``input_path`` (any audio file PyAV reads) and then sends ``texts``; or
    ``inputs``, audio (:func:`load_audio`) and messages (str) in any order; then the lines of
    ``lines`` (stdin in text mode; ``echo_lines=False`` leaves them unprinted, they are on the
    terminal already). ``mic`` uses the microphone instead, until the job ends or ``stop``.
    ``max_duration`` (seconds) bounds the whole run. ``stop`` (e.g. set on Ctrl-C) ends it
    at once with exit code 130. ``max_blocking_ms`` turns on hub-block warnings once the app
    is prewarmed (loading blocks by nature and stalls nobody yet). ``out``: where the
    conversation is printed (default stdout).

    Raises :class:`InputError` (a ``ValueError``) for an input that cannot be read, and
    ``ValueError`` for an output that cannot be written, before the agent starts.
    """
    out = out if out is not None else sys.stdout
    items: list[UserAudio | str] = list(inputs) if inputs is not None else []
    if inputs is None:
        if input_path:
            items.append(load_audio(input_path))
        items.extend(texts)

    group = gevent.pool.Group()  # the console's own greenlets, killed on the way out
    job: gevent.Greenlet | None = None
    returned = gevent.event.Event()  # the entrypoint returned (or raised)

    def agent_running() -> bool:
        return not returned.is_set() and not (job is not None and job.ready())

    # the user's audio is known ahead (a file): the microphone queues USER_LEAD_MS of it, so
    # a stall of the thread feeding it (a busy machine, a plugin holding the GIL) shorter than
    # that never reaches the agent; a live microphone only ever queues what it has recorded
    room = LocalRoom(user_queue_ms=100 if mic else USER_LEAD_MS)
    speaker_dev = _LazySpeaker() if speaker else None
    microphone: Any = None
    try:
        if mic:  # opened before the agent starts: a missing PortAudio fails at once
            from .devices import Microphone

            microphone = Microphone(room.user_source)
        session = ConsoleSession(
            room,
            out=out,
            output=output_path,
            sink=speaker_dev.write if speaker_dev is not None else None,
            agent_running=agent_running,
        )
    except OSError as exc:
        room.close()
        raise ValueError(f"cannot write output {output_path}: {exc.strerror or exc}") from None
    except BaseException:
        room.close()
        raise

    def entry(ctx: JobContext) -> Any:
        try:
            return entrypoint(ctx)
        finally:
            returned.set()

    started = time.monotonic()
    deadline = None if max_duration is None else started + max_duration

    def check() -> None:
        if stop is not None and stop.is_set():
            raise Stopped("interrupted")
        if job is not None and job.ready():
            raise Stopped("job ended")
        if deadline is not None and time.monotonic() > deadline:
            raise Stopped("timeout")

    result: JobResult | None = None
    reason = "done"
    try:
        userdata = prewarm() if prewarm is not None else None
        if max_blocking_ms is not None and max_blocking_ms > 0:
            enable_hub_block_detection(max_blocking_ms)
        if stop is not None and stop.is_set():  # Ctrl-C while the app was loading
            reason = "interrupted"
        else:
            ctx = JobContext(
                make_job("console", participant_identity=room.user.identity),
                room=room,
                userdata=userdata,
            )
            job = group.spawn(run_job, ctx, entry)
            try:
                _converse(session, items, lines, echo_lines, microphone, idle_s, check)
            except Stopped as stopped:
                reason = stopped.reason
            if reason == "timeout":
                logger.warning("console: stopping after {:.0f} s (max duration)", max_duration)
            ctx.shutdown("console interrupted" if reason == "interrupted" else "console finished")
            try:
                result = job.get(timeout=_JOB_END_TIMEOUT)
            except gevent.Timeout:
                logger.error("console: the job did not end within {:.0f} s", _JOB_END_TIMEOUT)
    finally:
        if lines is not None:
            lines.close()
        group.kill(block=True, timeout=5)
        session.close()
        room.close()
        if speaker_dev is not None:
            speaker_dev.close()
    exit_code = 0
    if reason == "interrupted":
        exit_code = EXIT_INTERRUPTED
    elif result is not None and result.failed:
        print(f"error: the agent failed: {result.error}", file=sys.stderr, flush=True)
        exit_code = 1
    return ConsoleResult(
        exit_code,
        result,
        list(session.lines),
        list(session.turns),
        session.greeting,
        reason,
        session.input_late_s,
        session.recorder.max_misplaced_s,
    )


def _converse(
    session: ConsoleSession,
    items: list[UserAudio | str],
    lines: LineReader | None,
    echo_lines: bool,
    microphone: Any,
    idle_s: float,
    check: Callable[[], None],
) -> None:
    """The user's part: the inputs in order, each once the agent answered the one before."""
    session.wait_joined(check)
    if microphone is not None:
        session.start_microphone(microphone)
        session.wait(check)  # the user talks until Ctrl-C (or the agent ends the job)
        return
    pending = collections.deque(items)
    while True:
        echo = True
        item: UserAudio | str | None
        if pending:
            item = pending.popleft()
        elif lines is not None:
            item, echo = lines.next(check), echo_lines
        else:
            item = None
        if item is None:
            break
        if isinstance(item, UserAudio):
            session.say(item, check, idle_s)
        else:
            session.send(item, check, idle_s, echo=echo)
    session.wait_idle(check, idle_s)
