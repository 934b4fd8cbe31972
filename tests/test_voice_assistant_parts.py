"""The VoiceAssistant's parts on their own: played-text alignment and endpointing."""

from __future__ import annotations

import time

import gevent
import gevent.event
import gevent.pool
import pytest

from syncagents.voice_assistant.endpointing import Endpointer
from syncagents.voice_assistant.played_text import PlayoutTracker, count_words, slice_words
from syncagents.voice_assistant.speech_handle import SpeechHandle
from syncagents.voice_assistant.user_turn import UserTurn

pytestmark = pytest.mark.timeout(30)


# -- played text --------------------------------------------------------------------------


def test_slice_words_keeps_the_original_spacing() -> None:
    text = "  Hello,  big\nworld! How are you? "
    assert count_words(text) == 6
    assert slice_words(text, 0, 3) == "Hello,  big\nworld!"
    assert slice_words(text, 3) == "How are you?"
    assert slice_words(text, 2, 2) == ""
    assert slice_words(text, 0, 0) == ""


def _tracker(segments: list[tuple[str, float]], frame: float = 0.02) -> PlayoutTracker:
    """Segments of (text, seconds of audio) fed frame by frame, text on the first frame."""
    tracker = PlayoutTracker()
    for text, seconds in segments:
        frames = round(seconds / frame)
        for i in range(frames):
            tracker.on_audio(text if i == 0 else "", frame)
    return tracker


def test_played_words_whole_segments_then_proportional_part() -> None:
    tracker = _tracker([("one two three four", 1.0), ("five six", 0.5)])
    assert tracker.captured == pytest.approx(1.5)
    assert tracker.played_words(0.0, 6) == 0
    assert tracker.played_words(0.24, 6) == 0  # a quarter of a word's share is not a word
    assert tracker.played_words(0.25, 6) == 1
    assert tracker.played_words(0.99, 6) == 3
    assert tracker.played_words(1.0, 6) == 4
    assert tracker.played_words(1.25, 6) == 5
    assert tracker.played_words(1.5, 6) == 6
    assert tracker.played_words(9.0, 6) == 6  # never more than what was captured


def test_played_words_without_segment_marks_use_the_pushed_words() -> None:
    tracker = _tracker([("", 2.0)])
    assert tracker.played_words(1.0, 10) == 5
    assert tracker.played_words(2.0, 10) == 10


def test_frames_before_the_first_mark_belong_to_the_first_segment() -> None:
    tracker = PlayoutTracker()
    tracker.on_audio("", 0.5)
    tracker.on_audio("a b", 0.5)
    assert tracker.played_words(0.5, 2) == 1


# -- endpointing ----------------------------------------------------------------------------


class _Turns:
    def __init__(self, delay: float) -> None:
        self.group = gevent.pool.Group()
        self.ended: list[tuple[float, str]] = []
        self.event = gevent.event.Event()
        self.ep = Endpointer(delay, spawn=self.group.spawn, on_end_of_turn=self._end)

    def _end(self) -> None:
        self.ended.append((time.monotonic(), self.ep.take_turn()))
        self.event.set()

    def wait(self, timeout: float = 5) -> tuple[float, str]:
        assert self.event.wait(timeout), "no end of turn"
        self.event.clear()
        return self.ended[-1]


def test_turn_ends_delay_after_end_of_speech_when_the_transcript_came_first() -> None:
    t = _Turns(0.2)
    t.ep.on_start_of_speech()
    t.ep.on_final_transcript("hello")
    assert not t.ep.pending  # still speaking
    t.ep.on_end_of_speech()
    eos = time.monotonic()
    assert t.ep.pending
    at, text = t.wait()
    assert text == "hello" and at - eos >= 0.2 - 0.005
    assert not t.ep.pending and t.ep.text == ""


def test_late_transcript_ends_the_turn_when_it_arrives() -> None:
    t = _Turns(0.1)
    t.ep.on_start_of_speech()
    t.ep.on_end_of_speech()
    assert not t.ep.pending  # nothing said yet
    assert not t.event.wait(0.2)  # no transcript: no turn, however long we wait
    arrived = time.monotonic()
    t.ep.on_final_transcript("late words")
    at, text = t.wait()
    assert text == "late words" and at >= arrived  # the transcript itself ends the turn


def test_speech_resuming_cancels_the_decision_and_the_turn_goes_on() -> None:
    t = _Turns(0.15)
    t.ep.on_start_of_speech()
    t.ep.on_final_transcript("hello")
    t.ep.on_end_of_speech()
    t.ep.on_start_of_speech()  # before the delay ran out
    assert t.ep.deadline < 0
    assert not t.event.wait(0.3)
    t.ep.on_final_transcript("how are you")
    t.ep.on_end_of_speech()
    _, text = t.wait()
    assert text == "hello how are you"
    assert len(t.ended) == 1


def test_empty_transcripts_do_not_make_a_turn() -> None:
    t = _Turns(0.05)
    t.ep.on_start_of_speech()
    t.ep.on_final_transcript("   ")
    t.ep.on_end_of_speech()
    assert not t.ep.pending
    assert not t.event.wait(0.2)
    t.ep.close()
    t.group.kill()


# -- UserTurn and SpeechHandle: their state changes through their own methods ---------------


def test_user_turn_follows_an_utterance_and_its_interruption() -> None:
    turn = UserTurn()
    turn.on_start(0.1)
    turn.on_final("hello")
    turn.on_interim("there")
    assert turn.said == "hello there"
    speech = object()
    turn.speech_began(user_speaking=True)  # 0.1 s were said before the speech began
    turn.on_speech(0.5)
    assert not turn.interrupts(speech, user_speaking=True, min_duration=0.5)
    turn.on_speech(0.6)
    assert turn.interrupts(speech, user_speaking=True, min_duration=0.5)
    assert turn.interrupts(speech, user_speaking=False, min_duration=0.5)  # stays armed
    # the VAD ends it before the STT reported: its transcript is awaited for a while
    turn.on_end(ended_at=10.0, now=11.0, transcript_wait=2.0)
    assert turn.speech_ended_at == 10.0 and turn.transcript_due(12.9)
    assert not turn.transcript_due(13.0)
    turn.on_stt_reported()
    assert not turn.transcript_due(11.5)
    turn.add_stt_duration(0.2)
    turn.add_stt_duration(0.3)
    assert turn.take_stt_duration() == pytest.approx(0.5)
    assert turn.take_stt_duration() == -1.0
    turn.on_start(0.05)  # a new utterance starts afresh
    assert turn.finals == [] and turn.interim_text == ""
    assert not turn.interrupts(speech, user_speaking=False, min_duration=0.5)


def test_speech_handle_transitions() -> None:
    interrupted: list[SpeechHandle] = []
    handle = SpeechHandle(
        interrupted.append, allow_interruptions=True, add_to_chat_ctx=True, is_reply=True
    )
    assert not handle.validated and not handle.started and handle.timings is not None
    handle.mark_validated()
    handle.wait_validated()  # returns at once
    assert handle.validated
    assert handle.mark_started() and not handle.mark_started()  # true the first time only
    assert handle.started
    handle.mark_interrupted(decided_at=100.0)
    handle.mark_played(1.5, stopped_at=100.05)
    assert handle.interrupted
    assert handle.interruption_delay == pytest.approx(0.05)
    handle.interrupt()  # asks its owner
    assert interrupted == [handle]
    handle.commit("what played")
    handle.mark_done()
    assert handle.done and handle.committed_text == "what played"
    handle.wait_for_playout(timeout=1)
    dropped = SpeechHandle(
        interrupted.append, allow_interruptions=True, add_to_chat_ctx=True, is_reply=False
    )
    dropped.mark_cancelled()
    assert dropped.cancelled and dropped.interruption_delay == -1.0 and dropped.timings is None
