"""``UserTurn``: what the assistant knows of the user's current utterance and turn.

One object owns it (it was loose attributes of the assistant): the VAD's speech duration,
the transcripts so far, whether the STT has reported on the utterance the VAD ended (a batch
STT recognizes it only then, so the turn waits for it), the STT time spent on the turn, and
the speech an interruption is armed against. The assistant calls the ``on_*`` methods as the
VAD and STT events arrive and reads the answers; nothing here emits events or decides turns.
"""

from __future__ import annotations

from typing import Any

__all__ = ["UserTurn"]


class UserTurn:
    """The user's current utterance (reset at each START_OF_SPEECH) and what of it spans the
    whole turn (the speech's end, the STT time: kept until ``take_stt_duration()``)."""

    def __init__(self) -> None:
        self.speech_duration = 0.0
        """Seconds of speech the VAD heard in this utterance so far."""
        self.finals: list[str] = []
        """The utterance's final transcripts, in order."""
        self.interim_text = ""
        """The latest interim transcript after the last final one."""
        self.speech_ended_at = -1.0
        """Clock time the last utterance really ended (-1: none yet)."""
        self._overlap_base = 0.0  # user speech already under way when the agent's began
        self._interrupt_armed: Any = None  # the speech overlapped long enough to interrupt
        self._stt_duration = -1.0  # STT seconds reported for the turn so far
        self._stt_reported = False  # the STT ended (or finalized) the current utterance
        self._transcript_due_until = -1.0  # monotonic: waiting for that report until then

    # -- events ----------------------------------------------------------------------------

    def on_start(self, speech_duration: float) -> None:
        """The VAD started a new utterance: its own state starts afresh."""
        self.speech_duration = speech_duration
        self._overlap_base = 0.0
        self.finals = []
        self.interim_text = ""
        self._interrupt_armed = None
        self._stt_reported = False

    def on_speech(self, speech_duration: float) -> None:
        """The VAD still hears the utterance, ``speech_duration`` seconds of it so far."""
        self.speech_duration = speech_duration

    def on_end(self, ended_at: float, now: float, transcript_wait: float) -> None:
        """The VAD ended the utterance (really ended at ``ended_at``); unless the STT already
        reported on it, its transcript is awaited until ``now + transcript_wait``."""
        self.speech_ended_at = ended_at
        if not self._stt_reported:
            self._transcript_due_until = now + transcript_wait

    def on_stt_reported(self) -> None:
        """The STT finalized or ended the utterance: no transcript is awaited any more."""
        self._stt_reported = True
        self._transcript_due_until = -1.0

    def on_interim(self, text: str) -> None:
        """An interim transcript of what follows the final ones."""
        self.interim_text = text

    def on_final(self, text: str) -> None:
        """A final transcript (not empty)."""
        self.finals.append(text)
        self.interim_text = ""

    def add_stt_duration(self, seconds: float) -> None:
        """A batch recognition of this turn took ``seconds``."""
        self._stt_duration = max(self._stt_duration, 0.0) + seconds

    def take_stt_duration(self) -> float:
        """The turn's STT seconds (-1: none reported), reset for the next turn."""
        seconds, self._stt_duration = self._stt_duration, -1.0
        return seconds

    # -- answers ---------------------------------------------------------------------------

    @property
    def said(self) -> str:
        """Everything transcribed of the utterance: the finals, then the interim text."""
        return " ".join([*self.finals, self.interim_text])

    def transcript_due(self, now: float) -> bool:
        """The VAD ended the utterance and its transcript is still awaited at ``now``."""
        return now < self._transcript_due_until

    def speech_began(self, user_speaking: bool) -> None:
        """The agent began a speech: user speech already under way does not count towards
        interrupting it."""
        self._overlap_base = self.speech_duration if user_speaking else 0.0

    def interrupts(self, handle: Any, user_speaking: bool, min_duration: float) -> bool:
        """Whether the user has spoken over ``handle`` for ``min_duration`` seconds (once
        true, it stays true for that speech until the next utterance)."""
        if user_speaking and self.speech_duration - self._overlap_base >= min_duration:
            self._interrupt_armed = handle
        return self._interrupt_armed is handle
