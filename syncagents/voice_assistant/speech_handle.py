"""``SpeechHandle``: one thing the agent says (a reply to a user turn, or ``say()``)."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any, Protocol

import gevent.event

from .metrics import TurnTimings
from .played_text import PlayoutTracker

if TYPE_CHECKING:
    from .synthesis import SpeechSynthesis

__all__ = ["SpeechHandle"]


class _Controller(Protocol):
    def _interrupt_speech(self, handle: SpeechHandle) -> None: ...


class SpeechHandle:
    """Returned by ``VoiceAssistant.say()`` and created for every reply.

    Speeches play one at a time, in the order they were queued. ``wait_for_playout()``
    blocks until this one finished playing, was interrupted or was discarded.
    """

    def __init__(
        self,
        controller: _Controller,
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
        self._controller = controller
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
        self._current_since = -1.0  # monotonic time it became the speech being played
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

    # -- control -----------------------------------------------------------------------------

    def interrupt(self) -> None:
        """Stop this speech now (or drop it if it has not started). ``RuntimeError`` when it
        does not allow interruptions."""
        if not self.allow_interruptions:
            raise RuntimeError("this speech does not allow interruptions")
        if not self.done:
            self._controller._interrupt_speech(self)

    def wait_for_playout(self, timeout: float | None = None) -> None:
        """Block until done; ``TimeoutError`` after ``timeout`` seconds."""
        if not self._done.wait(timeout):
            raise TimeoutError(f"speech {self.id} still playing after {timeout} s")

    def __repr__(self) -> str:
        state = "done" if self.done else ("playing" if self._started else "pending")
        return f"SpeechHandle(id={self.id!r}, reply={self.is_reply}, {state})"
