"""``Endpointer``: decides when the user's turn is over.

The turn ends ``min_endpointing_delay`` seconds after the VAD's END_OF_SPEECH once a final
transcript exists; if the transcript only arrives after that moment, the turn ends when it
arrives. Speech resuming before the end cancels the pending decision (the turn goes on and
later transcripts join it).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import gevent

__all__ = ["Endpointer"]


class Endpointer:
    def __init__(
        self,
        delay: float,
        *,
        spawn: Callable[..., gevent.Greenlet],
        on_end_of_turn: Callable[[], None],
    ) -> None:
        self.delay = delay
        self.speaking = False
        self.end_of_speech_at = -1.0
        """Monotonic time of the last END_OF_SPEECH event (-1: none since speech started)."""
        self.transcript_at = -1.0
        """Monotonic time of the turn's last final transcript."""
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
        self.speaking = True
        self.end_of_speech_at = -1.0
        self._cancel()

    def on_end_of_speech(self) -> None:
        self.speaking = False
        self.end_of_speech_at = time.monotonic()
        if self._parts:
            self._schedule(self.end_of_speech_at + self.delay)

    def on_final_transcript(self, text: str) -> None:
        text = text.strip()
        if not text:
            return
        self._parts.append(text)
        self.transcript_at = time.monotonic()
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
        delay = deadline - time.monotonic()
        if delay > 0:
            gevent.sleep(delay)
        if self._timer is not gevent.getcurrent():
            return  # superseded while we slept
        # from here on nothing may cancel us: the decision is being acted upon
        self._timer = None
        self.deadline = -1.0
        self._on_end_of_turn()
