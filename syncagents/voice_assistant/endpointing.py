"""``Endpointer``: decides when the user's turn is over.

The endpointing delay is counted from the moment the user's speech really ended, not from
when the VAD said so: a VAD reports END_OF_SPEECH only after ``min_silence_duration`` of
silence (silero: 0.55 s), so counting from the report would add that much to every turn.
The turn ends at the latest of

* the speech's end + ``min_endpointing_delay``,
* the VAD's END_OF_SPEECH (until then the user may still be talking), and
* the turn's last final transcript (there is nothing to answer before it).

Speech resuming before the end cancels the pending decision (the turn goes on and later
transcripts join it). Times come from an injectable clock (see ``clock``), so tests can run
the delay in virtual time.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gevent

from .clock import MONOTONIC, Clock

__all__ = ["Endpointer"]


class Endpointer:
    """The turn-taking decision of one conversation.

    ``delay``: the minimum endpointing delay; ``spawn`` starts the greenlet that waits for the
    decision; ``on_end_of_turn()`` is called (in that greenlet) when the turn is over, and
    should call ``take_turn()``; ``clock``: where times come from (default: monotonic).
    """

    def __init__(
        self,
        delay: float,
        *,
        spawn: Callable[..., gevent.Greenlet],
        on_end_of_turn: Callable[[], None],
        clock: Clock = MONOTONIC,
    ) -> None:
        self.delay = delay
        self.clock = clock
        self.speaking = False
        """Between the VAD's START_OF_SPEECH and its END_OF_SPEECH."""
        self.end_of_speech_at = -1.0
        """Clock time the user's last speech ended (-1: none since speech started)."""
        self.end_of_speech_reported_at = -1.0
        """Clock time the VAD reported that end (-1: none since speech started)."""
        self.transcript_at = -1.0
        """Clock time of the turn's last final transcript."""
        self.deadline = -1.0
        """When the pending decision fires (-1: none pending)."""
        self._parts: list[str] = []
        self._spawn = spawn
        self._on_end_of_turn = on_end_of_turn
        self._timer: Any = None

    @property
    def text(self) -> str:
        """The turn's transcript so far."""
        return " ".join(p for p in self._parts if p)

    @property
    def pending(self) -> bool:
        """The user stopped speaking and said something: a decision is coming."""
        return bool(self._parts) and not self.speaking

    def on_start_of_speech(self) -> None:
        """The VAD hears the user: no decision while they talk."""
        self.speaking = True
        self.end_of_speech_at = -1.0
        self.end_of_speech_reported_at = -1.0
        self._cancel()

    def on_end_of_speech(self, ended_at: float | None = None) -> None:
        """The VAD reported the end of the user's speech; ``ended_at`` is the clock time the
        speech really ended (before the silence the VAD waited for), default now."""
        now = self.clock.now()
        self.speaking = False
        self.end_of_speech_reported_at = now
        self.end_of_speech_at = now if ended_at is None or ended_at < 0 else min(ended_at, now)
        if self._parts:
            self._schedule(max(now, self.end_of_speech_at + self.delay))

    def on_final_transcript(self, text: str) -> None:
        """A final transcript of the user's speech joins the turn."""
        text = text.strip()
        if not text:
            return
        self._parts.append(text)
        self.transcript_at = self.clock.now()
        if not self.speaking:
            # a transcript without any END_OF_SPEECH (speech the VAD missed) waits a full delay
            base = self.end_of_speech_at if self.end_of_speech_at >= 0 else self.transcript_at
            self._schedule(max(self.transcript_at, base + self.delay))

    def take_turn(self) -> str:
        """The turn's text; the next turn starts empty."""
        text = self.text
        self._parts = []
        self.transcript_at = -1.0
        self._cancel()
        return text

    def close(self) -> None:
        """Cancel a pending decision."""
        self._cancel()

    def _schedule(self, deadline: float) -> None:
        self._cancel()
        self.deadline = deadline
        self._timer = self._spawn(self._wait, deadline)

    def _cancel(self) -> None:
        self.deadline = -1.0
        timer, self._timer = self._timer, None
        if timer is not None:
            timer.kill(block=False)

    def _wait(self, deadline: float) -> None:
        self.clock.sleep_until(deadline)
        if self._timer is not gevent.getcurrent():
            return  # superseded while we slept
        # from here on nothing may cancel us: the decision is being acted upon
        self._timer = None
        self.deadline = -1.0
        self._on_end_of_turn()
