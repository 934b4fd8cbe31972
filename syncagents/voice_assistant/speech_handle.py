"""``SpeechHandle``: one thing the agent says (a reply to a user turn, or ``say()``)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import gevent.event

from .metrics import TurnTimings
from .played_text import PlayoutTracker

if TYPE_CHECKING:
    from .synthesis import SpeechSynthesis

__all__ = ["SpeechHandle"]


class SpeechHandle:
    """Returned by ``VoiceAssistant.say()`` and created for every reply.

    Speeches play one at a time, in the order they were queued. ``wait_for_playout()``
    blocks until this one finished playing, was interrupted or was discarded.
    """

    def __init__(
        self,
        interrupter: Callable[[SpeechHandle], None],
        *,
        allow_interruptions: bool,
        add_to_chat_ctx: bool,
        is_reply: bool,
        user_question: str = "",
    ) -> None:
        self.id = "SPEECH_" + uuid.uuid4().hex[:12]
        self.allow_interruptions = allow_interruptions
        self.add_to_chat_ctx = add_to_chat_ctx
        self.is_reply = is_reply
        self.user_question = user_question
        """The user's text this speech answers ("" for ``say()``)."""
        self._interrupter = interrupter  # the owner's way to stop this speech
        self._done = gevent.event.Event()
        self._interrupted = False
        self._cancelled = False
        self._started = False
        # set when the speech may play: at once for say(), at the endpoint for a reply
        self._validated = gevent.event.Event()
        self._synthesis: SpeechSynthesis | None = None
        self._playout: Any = None  # the greenlet handing audio to the source
        self._tracker = PlayoutTracker()
        self._played_seconds = 0.0
        self._interrupt_decided_at = -1.0  # monotonic: the interruption was decided
        self._stopped_at = -1.0  # monotonic: playout stopped (the source's queue cleared)
        self._tool_words = 0  # leading words already in the context with tool calls
        self._timings: TurnTimings | None = TurnTimings() if is_reply else None
        self._committed_text: str | None = None
        self._user_message: Any = None  # a reply's user turn, once committed (a ChatMessage)

    # -- state -------------------------------------------------------------------------------

    @property
    def interrupted(self) -> bool:
        """Whether the speech was interrupted.

        Also true for a speech interrupted before it started playing (nothing of it played).
        """
        return self._interrupted

    @property
    def done(self) -> bool:
        """Finished playing, interrupted, or discarded."""
        return self._done.is_set()

    @property
    def started(self) -> bool:
        """Its first audio frame was handed to the agent's audio source."""
        return self._started

    @property
    def text(self) -> str:
        """The speech's text as read from its source so far."""
        return self._synthesis.text if self._synthesis is not None else ""

    @property
    def committed_text(self) -> str | None:
        """Once done: the text that counts as said (what played, when interrupted)."""
        return self._committed_text

    @property
    def cancelled(self) -> bool:
        """Dropped before it could play (a discarded reply, or the assistant closed)."""
        return self._cancelled

    @property
    def synthesis(self) -> SpeechSynthesis | None:
        """Its text source and TTS stream (None until the assistant set it)."""
        return self._synthesis

    @property
    def tracker(self) -> PlayoutTracker:
        """What of its text was handed to the audio source, and when."""
        return self._tracker

    @property
    def playout(self) -> Any:
        """The greenlet handing its audio to the source (None before it plays)."""
        return self._playout

    @playout.setter
    def playout(self, greenlet: Any) -> None:
        self._playout = greenlet

    @property
    def tool_words(self) -> int:
        """Leading words already in the chat context with tool calls (``set_tool_words``)."""
        return self._tool_words

    @property
    def interruption_delay(self) -> float:
        """Seconds from the interruption's decision to silence (-1: not interrupted while
        playing)."""
        if self._stopped_at < 0 or self._interrupt_decided_at < 0:
            return -1.0
        return self._stopped_at - self._interrupt_decided_at

    def played_words(self, total: int) -> int:
        """How many of the speech's ``total`` words were heard, from the audio played."""
        return self._tracker.played_words(self._played_seconds, total)

    @property
    def validated(self) -> bool:
        """It may play: at once for ``say()``, once its user turn ended for a reply."""
        return self._validated.is_set()

    @property
    def timings(self) -> TurnTimings | None:
        """A reply's turn timings (None for ``say()``)."""
        return self._timings

    # -- transitions: the assistant, its playout and its replies move the speech through
    # these; kept here so that the state has one owner (users only read it) ------------------

    def set_synthesis(self, synthesis: SpeechSynthesis) -> None:
        """The speech's text source and TTS stream (set once, when it is created)."""
        self._synthesis = synthesis

    def mark_validated(self) -> None:
        """The speech may play (at once for ``say()``, at the end of the turn for a reply)."""
        self._validated.set()

    def wait_validated(self) -> None:
        """Block until ``mark_validated()`` (a reply waits for it before running tools)."""
        self._validated.wait()

    def mark_started(self) -> bool:
        """Its first frame went to the audio source; True the first time only."""
        if self._started:
            return False
        self._started = True
        return True

    def mark_played(self, seconds: float, stopped_at: float | None = None) -> None:
        """Playout ended: ``seconds`` of audio were heard; ``stopped_at`` (on the assistant's
        clock) when an interruption silenced it."""
        self._played_seconds = seconds
        if stopped_at is not None:
            self._stopped_at = stopped_at

    def mark_interrupted(self, decided_at: float | None = None) -> None:
        """Interrupted; ``decided_at`` (on the assistant's clock): when the interruption was
        decided, for a speech that was playing (it measures how fast the audio stopped)."""
        self._interrupted = True
        if decided_at is not None:
            self._interrupt_decided_at = decided_at

    def mark_cancelled(self) -> None:
        """Dropped before it played anything: the speech loop skips it."""
        self._cancelled = True

    @property
    def user_message(self) -> Any:
        """A reply's user turn as committed to the chat context (a ``ChatMessage``; None
        before the turn ends, and for ``say()``)."""
        return self._user_message

    def set_user_message(self, message: Any) -> None:
        """The reply's user turn was committed as ``message``."""
        self._user_message = message

    def set_tool_words(self, words: int) -> None:
        """Its first ``words`` words are already in the chat context (with tool calls), so
        the committed text leaves them out."""
        self._tool_words = words

    def flush_synthesis(self) -> None:
        """Have the TTS speak the text it holds back (waiting for a sentence end) now."""
        if self._synthesis is not None:
            self._synthesis.flush()

    def commit(self, text: str) -> None:
        """``text`` counts as said (``committed_text``): set as the speech finishes."""
        self._committed_text = text

    def mark_done(self) -> None:
        """Finished, interrupted or discarded: waiters of ``wait_for_playout()`` return."""
        self._done.set()

    # -- control -----------------------------------------------------------------------------

    def interrupt(self) -> None:
        """Stop this speech now (or drop it if it has not started). ``RuntimeError`` when it
        does not allow interruptions."""
        if not self.allow_interruptions:
            raise RuntimeError("this speech does not allow interruptions")
        if not self.done:
            self._interrupter(self)

    def wait_for_playout(self, timeout: float | None = None) -> None:
        """Block until done; ``TimeoutError`` after ``timeout`` seconds."""
        if not self._done.wait(timeout):
            raise TimeoutError(f"speech {self.id} still playing after {timeout} s")

    def __repr__(self) -> str:
        state = "done" if self.done else ("playing" if self._started else "pending")
        return f"SpeechHandle(id={self.id!r}, reply={self.is_reply}, {state})"
