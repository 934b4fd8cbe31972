"""Turn-taking on the user's real speech end: the endpointing delay counts from where the VAD
last heard speech (not from its END_OF_SPEECH report), the reply is made preemptively while
that delay runs and released when it ends (dropped if the user resumes), and the turn metrics
count from the real speech end.

The parts (``Endpointer``, ``InputTimeline``, ``TurnTimings``) are tested on a
``VirtualClock``; the whole assistant with the real offline plugins (silero, streaming
pocketsphinx, espeak) and a scripted LLM, its user speaking espeak sentences at real-time
pace into a ``LocalRoom`` through the console's feeder, with turn-taking on a
``VirtualClock``: the test decides when time passes, so nothing depends on the machine's
speed. Every wait has a timeout; nothing sleeps, and no wall-clock timing is asserted.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterator
from typing import Any

import gevent
import gevent.event
import gevent.pool
import pytest
from speech import speak

from syncagents import VoiceAssistant, llm
from syncagents.console.feeder import audio_from_samples
from syncagents.plugins import espeak, pocketsphinx, silero
from syncagents.rtc.realtime import Clip, RealtimeFeed
from syncagents.testing import FakeLLM
from syncagents.testing.local_room import USER_RATE, LocalRoom
from syncagents.voice_assistant import EVENTS, TurnMetrics
from syncagents.voice_assistant.clock import VirtualClock
from syncagents.voice_assistant.endpointing import Endpointer
from syncagents.voice_assistant.human_input import InputTimeline
from syncagents.voice_assistant.metrics import TurnTimings

pytestmark = pytest.mark.timeout(180)

WAIT = 30.0  # generous bound for any single wait on a shared machine
DELAY = 0.5  # the default min_endpointing_delay
FRAME_S = 0.02  # the frames of the InputTimeline tests
# Virtual time is only ever moved by the tests, so a speech end mapped from frames that all
# arrived at one instant lies at most one of HumanInput's input frames (tens of ms) before
# that instant: the bound the assistant tests allow for it.
SLACK = 0.1


# -- the clock ------------------------------------------------------------------------------


def test_virtual_clock_wakes_sleepers_when_their_time_comes() -> None:
    clock = VirtualClock(start=10.0)
    woke: list[tuple[str, float]] = []
    done = gevent.event.Event()

    def sleeper(name: str, deadline: float) -> None:
        clock.sleep_until(deadline)
        woke.append((name, clock.now()))
        if len(woke) == 2:
            done.set()

    group = gevent.pool.Group()
    group.spawn(sleeper, "late", 12.0)
    group.spawn(sleeper, "early", 11.0)
    gevent.idle()
    assert clock.waiting == 2 and woke == []
    clock.advance(0.5)
    gevent.idle()
    assert woke == []
    clock.advance(2.0)
    assert done.wait(WAIT)
    assert woke == [("early", 12.5), ("late", 12.5)]
    clock.sleep_until(1.0)  # a deadline in the past returns at once
    with pytest.raises(ValueError):
        clock.advance(-1)
    group.kill()


# -- the endpointer -------------------------------------------------------------------------


class _Turns:
    """An Endpointer on a virtual clock, recording each end of turn (clock time, text)."""

    def __init__(self, delay: float = DELAY) -> None:
        self.clock = VirtualClock(start=100.0)
        self.group = gevent.pool.Group()
        self.ended: list[tuple[float, str]] = []
        self.event = gevent.event.Event()
        self.ep = Endpointer(
            delay, spawn=self.group.spawn, on_end_of_turn=self._end, clock=self.clock
        )

    def _end(self) -> None:
        self.ended.append((self.clock.now(), self.ep.take_turn()))
        self.event.set()

    def wait(self) -> tuple[float, str]:
        assert self.event.wait(WAIT), "no end of turn"
        self.event.clear()
        return self.ended[-1]

    def settle(self) -> None:
        """Let every greenlet that can run, run (a decision that is due fires)."""
        gevent.idle()

    def close(self) -> None:
        self.ep.close()
        self.group.kill()


@pytest.fixture
def turns() -> Iterator[_Turns]:
    t = _Turns()
    yield t
    t.close()


def test_the_delay_counts_from_where_the_speech_ended(turns: _Turns) -> None:
    ep, clock = turns.ep, turns.clock
    ep.on_start_of_speech()
    ep.on_final_transcript("hello")
    clock.advance(0.3)
    # the VAD reports now that the speech ended 0.2 s ago
    ep.on_end_of_speech(ended_at=clock.now() - 0.2)
    assert ep.end_of_speech_at == pytest.approx(100.1)
    assert ep.end_of_speech_reported_at == pytest.approx(100.3)
    assert ep.deadline == pytest.approx(100.1 + DELAY)
    clock.advance(0.29)
    turns.settle()
    assert turns.ended == [] and ep.pending
    clock.advance(0.01)
    at, text = turns.wait()
    assert text == "hello" and at == pytest.approx(100.6)


def test_a_report_after_the_delay_ran_out_ends_the_turn_at_once(turns: _Turns) -> None:
    ep, clock = turns.ep, turns.clock
    ep.on_start_of_speech()
    ep.on_final_transcript("hello")
    # silero reports 0.55 s of silence: longer than the delay
    ep.on_end_of_speech(ended_at=clock.now() - 0.55)
    at, text = turns.wait()  # the clock never moved
    assert text == "hello" and at == pytest.approx(100.0)


def test_a_late_transcript_ends_the_turn_when_it_arrives(turns: _Turns) -> None:
    ep, clock = turns.ep, turns.clock
    ep.on_start_of_speech()
    ep.on_end_of_speech(ended_at=clock.now() - 0.1)
    assert not ep.pending and ep.deadline < 0  # nothing said yet: nothing to decide
    clock.advance(2.0)
    turns.settle()
    assert turns.ended == []
    ep.on_final_transcript("late words")
    at, text = turns.wait()
    assert text == "late words" and at == pytest.approx(102.0)
    assert ep.transcript_at == -1.0  # reset for the next turn


def test_speech_resuming_cancels_the_decision_and_the_turn_goes_on(turns: _Turns) -> None:
    ep, clock = turns.ep, turns.clock
    ep.on_start_of_speech()
    ep.on_final_transcript("hello")
    ep.on_end_of_speech(ended_at=clock.now() - 0.1)
    clock.advance(0.2)
    ep.on_start_of_speech()  # before the delay ran out
    assert ep.deadline < 0 and ep.end_of_speech_at < 0
    clock.advance(5.0)
    turns.settle()
    assert turns.ended == []
    ep.on_final_transcript("how are you")
    ep.on_end_of_speech(ended_at=clock.now())
    clock.advance(DELAY)
    _, text = turns.wait()
    assert text == "hello how are you" and len(turns.ended) == 1


def test_an_end_in_the_future_or_unknown_is_taken_as_now(turns: _Turns) -> None:
    ep, clock = turns.ep, turns.clock
    ep.on_start_of_speech()
    ep.on_final_transcript("hi")
    ep.on_end_of_speech(ended_at=clock.now() + 3.0)
    assert ep.end_of_speech_at == clock.now()
    ep.on_start_of_speech()
    ep.on_end_of_speech()
    assert ep.end_of_speech_at == clock.now()
    assert ep.deadline == pytest.approx(clock.now() + DELAY)


# -- when the audio arrived -----------------------------------------------------------------


def test_input_timeline_maps_a_stream_position_to_its_arrival() -> None:
    clock = VirtualClock(start=50.0)
    timeline = InputTimeline(clock)
    assert timeline.time_of(0.0) is None  # nothing received yet
    # 20 ms frames, each arriving 30 ms after its audio... except a run held up 0.25 s more
    # (and those right after it, queued behind)
    for i in range(100):  # 2 s of audio
        end = (i + 1) * FRAME_S
        clock.set(max(clock.now(), 50.0 + end + 0.03 + (0.25 if 60 <= i < 70 else 0.0)))
        timeline.on_audio(FRAME_S)
    assert timeline.position == pytest.approx(2.0)
    # a position inside a late frame gets the delay of the timely frames before it
    assert timeline.time_of(1.3) == pytest.approx(50.0 + 1.3 + 0.03)
    assert timeline.time_of(0.5) == pytest.approx(50.0 + 0.5 + 0.03)
    assert timeline.time_of(2.5) is None  # not received yet
    # never later than now
    clock.set(60.0)
    timeline.on_audio(FRAME_S)  # after a long gap
    assert timeline.time_of(2.01) == pytest.approx(50.0 + 2.01 + 0.03)


def test_input_timeline_forgets_old_audio() -> None:
    clock = VirtualClock()
    timeline = InputTimeline(clock, horizon=1.0)
    for _ in range(200):
        timeline.on_audio(FRAME_S)
    assert timeline.time_of(3.99) is not None
    assert timeline.time_of(1.0) is None


# -- metrics --------------------------------------------------------------------------------


def test_turn_metrics_count_from_the_real_speech_end() -> None:
    timings = TurnTimings(
        user_text="hello",
        speech_ended_at=10.0,
        end_of_speech_reported_at=10.58,
        transcript_at=10.4,
        llm_first_token_at=10.41,
        tts_ttfb=0.02,
        validated_at=10.58,
        first_frame_at=10.59,
        preemptive=True,
    )
    m = timings.metrics("SPEECH_x", interrupted=False)
    assert m.transcription_delay == pytest.approx(0.4)
    assert m.vad_report_delay == pytest.approx(0.58)
    assert m.llm_first_token_delay == pytest.approx(0.41)
    assert m.tts_first_frame_delay == pytest.approx(0.43)  # first token + TTS's ttfb
    assert m.end_of_utterance_delay == pytest.approx(0.58)
    assert m.e2e_latency == pytest.approx(0.59)
    assert m.reply_delay == pytest.approx(0.01)
    assert m.preemptive and not m.interrupted
    unknown = TurnTimings(first_frame_at=3.0).metrics("SPEECH_y", interrupted=False)
    assert unknown.e2e_latency == -1 and unknown.tts_first_frame_delay == -1


# -- the assistant, with real plugins -------------------------------------------------------


@pytest.fixture(scope="module")
def stt() -> pocketsphinx.STT:
    return pocketsphinx.STT()


@pytest.fixture(scope="module")
def sentences() -> dict[str, Any]:
    """The user's sentences, spoken by espeak at the user track's rate."""
    texts = {
        "weather": "What is the weather like today?",
        "lights": "Please turn on the lights in the kitchen.",
        "time": "Can you tell me what time it is?",
    }
    return {key: audio_from_samples(speak(text, sample_rate=USER_RATE), key)
            for key, text in texts.items()}


class Talk:
    """A user (the console's feeder) and a VoiceAssistant on a virtual clock in a LocalRoom;
    every assistant event is recorded and can be waited for."""

    def __init__(self, *, vad: silero.VAD, stt: pocketsphinx.STT, fake_llm: FakeLLM) -> None:
        self.clock = VirtualClock()
        self.room = LocalRoom()
        self.room.connect()
        self.llm = fake_llm
        self.events: list[tuple[str, tuple[Any, ...]]] = []
        self._signals: dict[str, gevent.event.Event] = collections.defaultdict(
            gevent.event.Event
        )
        self.assistant = VoiceAssistant(
            vad=vad, stt=stt, llm=fake_llm, tts=espeak.TTS(), clock=self.clock
        )
        for name in sorted(EVENTS):
            self.assistant.on(name, self._recorder(name))  # type: ignore[arg-type]
        self.assistant.tts.on("metrics_collected", self._recorder("tts_metrics"))
        self.group = gevent.pool.Group()
        self.feeder = RealtimeFeed(self.room.user_source)
        self.group.spawn(self.feeder.run)
        self.assistant.start(self.room)

    def _recorder(self, name: str) -> Callable[..., None]:
        def record(*args: Any) -> None:
            self.events.append((name, args))
            self._signals[f"{name}#{self.count(name)}"].set()

        return record

    def count(self, name: str) -> int:
        return sum(1 for n, _ in self.events if n == name)

    def wait(self, name: str, nth: int = 1) -> tuple[Any, ...]:
        """The arguments of the ``nth`` event ``name`` (waits up to WAIT s for it)."""
        ok = self._signals[f"{name}#{nth}"].wait(WAIT)
        assert ok, f"no {name} #{nth} within {WAIT} s; events: {[n for n, _ in self.events]}"
        return [a for n, a in self.events if n == name][nth - 1]

    def say(self, audio: Any) -> Clip:
        return self.feeder.say(audio)

    def close(self) -> None:
        self.assistant.close()
        self.group.kill(block=True, timeout=5)
        self.room.close()


@pytest.fixture
def talks() -> Iterator[list[Talk]]:
    made: list[Talk] = []
    yield made
    for talk in made:
        talk.close()


def _user_turns(ctx: llm.ChatContext) -> list[str]:
    return [str(m.content) for m in ctx.messages if m.role == "user"]


def test_preemptive_reply_is_held_until_the_endpoint_then_released(
    talks: list[Talk], stt: pocketsphinx.STT, sentences: dict[str, Any]
) -> None:
    fake_llm = FakeLLM(["It is sunny."])
    talk = Talk(vad=silero.VAD(), stt=stt, fake_llm=fake_llm)
    talks.append(talk)
    start = talk.clock.now()
    talk.say(sentences["weather"])
    # with the clock standing still, the whole turn up to the endpoint happens: the VAD's
    # END_OF_SPEECH, the final transcript, the reply's LLM request and its synthesis
    talk.wait("user_stopped_speaking")
    fake_llm.wait_for_calls(1, timeout=WAIT)
    talk.wait("tts_metrics")  # the reply's audio is synthesized...
    assert not talk.assistant.agent_speaking  # ...and held back
    assert talk.count("user_speech_committed") == 0 and talk.assistant.user_turn_pending
    assert talk.assistant.chat_ctx.messages == []

    talk.clock.advance(DELAY - SLACK)
    gevent.idle()
    assert talk.count("user_speech_committed") == 0
    talk.clock.advance(SLACK)  # the delay ran out: the reply plays at once
    (user_msg,) = talk.wait("user_speech_committed")
    talk.wait("agent_started_speaking")
    (agent_msg,) = talk.wait("agent_speech_committed")
    (metrics,) = talk.wait("metrics_collected")

    assert fake_llm.call_count == 1  # the preemptive request was the reply
    assert _user_turns(fake_llm.calls[0]) == [user_msg.content]
    assert agent_msg.content == "It is sunny."
    assert [(m.role, m.content) for m in talk.assistant.chat_ctx.messages] == [
        ("user", user_msg.content),
        ("assistant", "It is sunny."),
    ]
    assert isinstance(metrics, TurnMetrics) and metrics.preemptive
    # virtual time: everything before the endpoint happened at `start`
    assert DELAY <= metrics.end_of_utterance_delay <= DELAY + SLACK
    assert metrics.e2e_latency == pytest.approx(metrics.end_of_utterance_delay)
    assert 0 <= metrics.transcription_delay <= SLACK
    assert 0 <= metrics.llm_first_token_delay <= SLACK
    assert talk.clock.now() == pytest.approx(start + DELAY)


def test_preemptive_reply_is_dropped_when_the_user_resumes(
    talks: list[Talk], stt: pocketsphinx.STT, sentences: dict[str, Any]
) -> None:
    fake_llm = FakeLLM(["Hi to you."], responder=lambda ctx: "The answer to all of it.")
    talk = Talk(vad=silero.VAD(), stt=stt, fake_llm=fake_llm)
    talks.append(talk)
    talk.say(sentences["lights"])
    talk.wait("user_stopped_speaking")
    fake_llm.wait_for_calls(1, timeout=WAIT)  # the preemptive reply to the first sentence
    talk.wait("tts_metrics")  # its audio is ready, held back by the endpointing delay
    first = _user_turns(fake_llm.calls[0])[-1]

    talk.say(sentences["time"])  # the user goes on before the endpoint
    talk.wait("user_started_speaking", 2)
    talk.wait("user_stopped_speaking", 2)
    fake_llm.wait_for_calls(2, timeout=WAIT)  # a new reply, to the whole turn
    talk.clock.advance(DELAY)
    (user_msg,) = talk.wait("user_speech_committed")
    (agent_msg,) = talk.wait("agent_speech_committed")
    (metrics,) = talk.wait("metrics_collected")

    assert user_msg.content.startswith(first + " ")  # one turn: both sentences
    assert _user_turns(fake_llm.calls[-1]) == [user_msg.content]
    assert agent_msg.content == "The answer to all of it."
    assert metrics.preemptive
    # the first reply never played and is nowhere in the conversation
    assert talk.count("agent_started_speaking") == 1
    assert talk.count("user_speech_committed") == 1
    assert [(m.role, m.content) for m in talk.assistant.chat_ctx.messages] == [
        ("user", user_msg.content),
        ("assistant", "The answer to all of it."),
    ]


def test_endpoint_and_metrics_count_from_the_real_speech_end(
    talks: list[Talk], stt: pocketsphinx.STT, sentences: dict[str, Any]
) -> None:
    # A VAD that waits 12 s of silence before it reports the end of speech, while the STT
    # finalizes after ~0.3 s of it: the reply starts on the final transcript, then 2 s pass
    # (on the virtual clock) before the VAD's report comes. The endpointing delay ran out long
    # before that report, so the turn ends the moment it comes, with no further wait. (The
    # silence plays in real time and the decoder shares the machine: 5 s was once not enough
    # for pocketsphinx's final beside another test run, hence 12.)
    fake_llm = FakeLLM(["It is sunny."])
    talk = Talk(vad=silero.VAD(min_silence_duration=12.0), stt=stt, fake_llm=fake_llm)
    talks.append(talk)
    start = talk.clock.now()
    talk.say(sentences["weather"])
    # the final transcript came (its audio arrived at `start`) and the reply started, while
    # the VAD still hears "speech"
    fake_llm.wait_for_calls(1, timeout=WAIT)
    assert talk.count("user_stopped_speaking") == 0
    talk.clock.advance(2.0)
    talk.wait("user_stopped_speaking")
    # the clock is not moved again: the endpoint was due when the report came
    talk.wait("user_speech_committed")
    talk.wait("agent_started_speaking")
    (metrics,) = talk.wait("metrics_collected")
    assert talk.clock.now() == pytest.approx(start + 2.0)
    assert metrics.preemptive and fake_llm.call_count == 1
    assert metrics.vad_report_delay == pytest.approx(2.0, abs=SLACK)
    # measured from the speech's end (at `start`), not from the VAD's report (at +2 s)
    assert metrics.end_of_utterance_delay == pytest.approx(2.0, abs=SLACK)
    assert metrics.e2e_latency == pytest.approx(2.0, abs=SLACK)
    assert metrics.transcription_delay <= SLACK
