"""The user's side of a conversation with an agent in a :class:`LocalRoom`.

``ConsoleSession`` is the one piece of machinery behind ``syncagents console``,
``syncagents.testing.converse`` and the user of a ``DispatchServer`` job: it speaks audio clips
and sends chat messages as the user (each after the agent answered the previous one),
records what the agent publishes, writes the conversation as ``user:`` / ``agent:`` lines, and
measures each turn's latency.

Where the lines come from: with a ``VoiceAssistant`` (or ``AgentSession``) in the room, from
its own events (``user_speech_committed``; every speech it finishes), so they print whether or
not it publishes transcriptions; without one (a hand-written agent), from the final
transcription segments the agent publishes.

When a turn is over: the user's input has played and the agent has been quiet for
``idle_s`` seconds, where busy means an assistant is speaking, preparing a speech, hearing the
user or owes the user an answer, or agent audio played within the last ``VOICE_HOLD_S``. An
agent with no assistant owes an answer from the end of the user's speech until its first
audio (or its first line, when it publishes no audio track), for at most ``REPLY_WAIT_S``
while its entrypoint runs; once its entrypoint returned, ``SETTLE_S`` of quiet is enough
(nothing is left to answer).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TextIO

import gevent
import gevent.pool
from loguru import logger

from ..rtc.realtime import Clip, RealtimeFeed
from ..testing.local_room import LocalRoom
from .feeder import UserAudio
from .recorder import AgentRecorder

__all__ = ["REPLY_WAIT_S", "SETTLE_S", "ConsoleSession", "Stopped", "Turn"]

# quiet that ends a greeting before the user speaks first (and a finished hand-written agent)
SETTLE_S = 0.5
# how long an agent that has not made a sound (and has no assistant) may take to start a greeting
GREETING_GRACE_S = 1.0
# the agent counts as speaking this long after its last frame with speech (gaps between words)
VOICE_HOLD_S = 0.3
# how long an agent without VoiceAssistant is given to answer a turn while its entrypoint runs
REPLY_WAIT_S = 30.0
# how often the waits re-check their condition (time-based conditions: quiet for N seconds)
CHECK_S = 0.05

Check = Callable[[], None]


class Stopped(Exception):
    """A wait ended before its condition: ``reason`` says why (``timeout``, ``interrupted``,
    ``job ended``), as raised by the ``check`` callable the waits are given."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class Turn:
    """One user input and the agent's answer.

    ``input``: the audio's name or the message; ``kind``: ``"audio"`` or ``"text"``;
    ``user_text``: what the agent heard (its transcript of the audio, or the message);
    ``agent_text``: what it said in answer; ``latency``: seconds from the end of the user's
    speech (or the message) to the agent's first audio after it (None: no audio came).
    """

    input: str
    kind: str
    user_text: str = ""
    agent_text: str = ""
    latency: float | None = None
    _clip: Clip | None = field(default=None, repr=False, compare=False)
    _sent_at: float | None = field(default=None, repr=False, compare=False)
    _answered: bool = field(default=False, repr=False, compare=False)
    _gave_up: bool = field(default=False, repr=False, compare=False)

    @property
    def speech_ended_at(self) -> float | None:
        """``time.monotonic()`` when the user's speech ended (None while it has not)."""
        if self._clip is not None:
            return self._clip.speech_ended_at
        return self._sent_at


def _text_of(message: Any) -> str:
    content = getattr(message, "content", message)
    if isinstance(content, (list, tuple)):
        content = " ".join(part for part in content if isinstance(part, str))
    return str(content or "")


def _join(before: str, text: str) -> str:
    return f"{before} {text}" if before else text


class ConsoleSession:
    """The user in ``room``; see the module docstring.

    ``out``: where ``user:`` / ``agent:`` / ``latency:`` lines are printed (None: nowhere).
    ``output``: WAV path for the agent's audio (opened now: ``OSError`` if it cannot be).
    ``sink``: also gets every frame of the agent's audio (a speaker).
    ``agent_running()``: False once the agent's entrypoint returned (default: always running).
    The blocking methods take ``check``, called while they wait; it raises :class:`Stopped`
    to end the wait (timeout, Ctrl-C, job ended).
    """

    def __init__(
        self,
        room: LocalRoom,
        *,
        out: TextIO | None = None,
        output: str | None = None,
        sink: Callable[[Any], None] | None = None,
        agent_running: Callable[[], bool] | None = None,
    ) -> None:
        self.room = room
        self._out = out
        self._agent_running = agent_running or (lambda: True)
        self.lines: list[tuple[str, str]] = []
        self.turns: list[Turn] = []
        self._greeting: list[str] = []
        self._turn: Turn | None = None
        self._seen_segments: set[str] = set()
        self._echoed: list[str] = []  # messages we sent and printed: the assistant echoes them
        self._group = gevent.pool.Group()
        self._feeder: RealtimeFeed | None = None
        self._busy_at = time.monotonic()
        self._ready = False
        self.heard_agent = False
        t0 = room.connected_at if room.connected_at is not None else time.monotonic()
        self.recorder = AgentRecorder(output, t0=t0, sink=sink, on_voice=self._on_voice)
        room.track_listeners.append(self.recorder.attach)
        room.transcription_listeners.append(self._on_transcription)
        room.assistant_listeners.append(self._follow)
        for publication in room.agent_publications:  # made after the agent joined
            self.recorder.attach(publication)
        for assistant in room.assistants:
            self._follow(assistant)

    # -- what happened --------------------------------------------------------------------------
    @property
    def greeting(self) -> str:
        """What the agent said before the user's first input."""
        return " ".join(self._greeting)

    @property
    def current_turn(self) -> Turn | None:
        """The latest turn (None before the first input)."""
        return self._turn

    # -- the user's side ------------------------------------------------------------------------
    def wait_joined(self, check: Check) -> None:
        """Until the agent connected to the room."""
        while not self.room.joined.wait(CHECK_S):
            check()
        if self.room.connected_at is not None:
            self.recorder.t0 = self.room.connected_at  # the output starts when the agent joined

    def start(self) -> None:
        """Open the user's microphone: silence until something is said (idempotent; the
        agent must have joined)."""
        if self._feeder is None:
            # one timeline for both sides: the microphone's frame 0 is due when the agent
            # joined, the recorder's time 0 (the output WAV's first sample)
            self._feeder = RealtimeFeed(self.room.user_source, origin=self.room.connected_at)
            self._group.spawn(self._feeder.run)

    @property
    def input_late_s(self) -> float:
        """How late the user's audio was handed to the microphone track against its
        real-time schedule, at worst (0 before any input played)."""
        return self._feeder.max_late_s if self._feeder is not None else 0.0

    def start_microphone(self, microphone: Any) -> None:
        """Use a real microphone (``console.devices.Microphone``) as the user instead."""
        self._group.spawn(microphone.run)

    def wait_ready(self, check: Check, idle_s: float) -> None:
        """Until the agent is done greeting, so the user's first words do not cut it off.

        The greeting is over once it can no longer start late (an assistant is in the room,
        the agent was heard, its entrypoint returned, or ``GREETING_GRACE_S`` (at most
        ``idle_s``) passed since it joined) and the agent has been quiet for ``SETTLE_S``."""
        if self._ready:
            return
        self.wait_joined(check)
        joined = self.room.connected_at or time.monotonic()
        grace = min(idle_s, GREETING_GRACE_S)

        def settled() -> bool:
            begun = (
                bool(self.room.assistants)
                or self.heard_agent
                or not self._agent_running()
                or time.monotonic() - joined >= grace
            )
            return begun and self.quiet_for() >= SETTLE_S

        self._wait(settled, check)
        self._ready = True

    def say(self, audio: UserAudio, check: Check, idle_s: float) -> Turn:
        """The user says ``audio`` (after the greeting); returns once the agent answered and
        was quiet for ``idle_s``."""
        self.wait_ready(check, idle_s)
        self.start()
        assert self._feeder is not None
        turn = self._begin(Turn(audio.name, "audio"))
        turn._clip = self._feeder.say(audio)
        self._wait_turn(turn, check, idle_s)
        return turn

    def send(self, text: str, check: Check, idle_s: float, *, echo: bool = True) -> Turn:
        """The user sends ``text`` as a chat message (after the greeting); returns once the
        agent answered and was quiet for ``idle_s``. ``echo=False``: the ``user:`` line is
        recorded but not printed (the user typed it on a terminal: it is on screen)."""
        self.wait_ready(check, idle_s)
        self.start()  # the microphone stays live, as in a real call
        turn = self._begin(Turn(text, "text"))
        turn._sent_at = time.monotonic()
        self._echoed.append(" ".join(text.split()))
        self._line("user", text, echo=echo)
        self.room.send_chat(text)
        self._wait_turn(turn, check, idle_s)
        return turn

    def wait_idle(self, check: Check, idle_s: float) -> None:
        """Until the greeting (if any) is over and the agent has been quiet for ``idle_s``."""
        self.wait_ready(check, idle_s)
        self._wait(lambda: self.quiet_for() >= self._idle_needed(idle_s), check)

    def wait(self, check: Check) -> None:
        """Until ``check`` stops it (a microphone session has no end of its own)."""
        self._wait(lambda: False, check)

    def close(self) -> None:
        """Stop the user's microphone and finish the recording. Idempotent."""
        self._group.kill(block=True, timeout=5)
        for listeners, fn in (
            (self.room.track_listeners, self.recorder.attach),
            (self.room.transcription_listeners, self._on_transcription),
            (self.room.assistant_listeners, self._follow),
        ):
            if fn in listeners:
                listeners.remove(fn)
        self.recorder.close()

    # -- quiet ----------------------------------------------------------------------------------
    def quiet_for(self) -> float:
        """Seconds the agent has been quiet (and the user's input done): see module doc."""
        now = time.monotonic()
        if self._busy(now):
            self._busy_at = now
        # agent audio between two calls counts even if no call saw it
        last_voice = self.recorder.last_voice_at
        if last_voice is not None:
            self._busy_at = max(self._busy_at, last_voice + VOICE_HOLD_S)
        return max(0.0, now - self._busy_at)

    def _busy(self, now: float) -> bool:
        if self._feeder is not None and self._feeder.playing:
            return True
        for assistant in list(self.room.assistants):
            if (
                getattr(assistant, "agent_speaking", False)
                or getattr(assistant, "user_turn_pending", False)
                or getattr(assistant, "user_speaking", False)
                or getattr(assistant, "current_speech", None) is not None
            ):
                return True
        return self._owes_answer(now)

    def _owes_answer(self, now: float) -> bool:
        turn = self._turn
        if turn is None or turn._answered or self.room.assistants or not self._agent_running():
            return False
        ended = turn.speech_ended_at
        if ended is None or now - ended < REPLY_WAIT_S:
            return True
        if not turn._gave_up:
            turn._gave_up = True
            logger.warning("no answer from the agent within {:.0f} s; going on", REPLY_WAIT_S)
        return False

    def _idle_needed(self, idle_s: float) -> float:
        if not self.room.assistants and not self._agent_running():
            return SETTLE_S  # a hand-written agent whose entrypoint returned has nothing left
        return idle_s

    def _begin(self, turn: Turn) -> Turn:
        self._turn = turn
        self.turns.append(turn)
        self._busy_at = time.monotonic()
        return turn

    def _wait_turn(self, turn: Turn, check: Check, idle_s: float) -> None:
        def over() -> bool:
            played = turn._clip is None or turn._clip.done.is_set()
            return played and self.quiet_for() >= self._idle_needed(idle_s)

        self._wait(over, check)

    @staticmethod
    def _wait(condition: Callable[[], bool], check: Check) -> None:
        while not condition():
            check()
            gevent.sleep(CHECK_S)

    # -- what the agent does --------------------------------------------------------------------
    def _line(self, who: str, text: str, *, echo: bool = True) -> None:
        text = " ".join(text.split())
        if not text:
            return
        self.lines.append((who, text))
        turn = self._turn
        if turn is None:
            if who == "agent":
                self._greeting.append(text)
        elif who == "user":
            turn.user_text = _join(turn.user_text, text)
        else:
            turn.agent_text = _join(turn.agent_text, text)
            if self.recorder.rate is None:
                # an agent that talks is answering once its audio comes (its transcript may
                # come first); one with no audio track answers with the line itself
                turn._answered = True
        if echo:
            self._print(f"{who}: {text}")

    def _print(self, line: str) -> None:
        if self._out is not None:
            print(line, file=self._out, flush=True)

    def _on_voice(self, began_at: float) -> None:
        self.heard_agent = True
        turn = self._turn
        if turn is None or turn.latency is not None:
            return
        ended = turn.speech_ended_at
        if ended is None or began_at < ended:
            return  # the agent was talking over the user: not an answer to the finished turn
        turn.latency = began_at - ended
        turn._answered = True
        self._print(f"latency: {turn.latency * 1000:.0f} ms")

    def _on_transcription(self, transcription: Any) -> None:
        if self.room.assistants:
            return  # the assistant's events give the same lines
        user = transcription.participant_identity == self.room.user.identity
        for segment in transcription.segments:
            if not segment.final or segment.id in self._seen_segments:
                continue
            self._seen_segments.add(segment.id)
            self._line("user" if user else "agent", segment.text)

    def _follow(self, assistant: Any) -> None:
        assistant.on("user_speech_committed", self._on_user_committed)
        assistant.on("agent_stopped_speaking", functools.partial(self._on_agent_stopped, assistant))

    def _on_user_committed(self, message: Any) -> None:
        text = " ".join(_text_of(message).split())
        if text in self._echoed:
            self._echoed.remove(text)  # a message we sent (and printed): the assistant took it
            return
        self._line("user", text)

    def _on_agent_stopped(self, assistant: Any) -> None:
        # emitted while the speech that stopped is still the assistant's current one
        speech = getattr(assistant, "current_speech", None)
        if speech is None:
            return
        text = speech.committed_text if speech.interrupted else speech.text
        self._line("agent", text or "")
