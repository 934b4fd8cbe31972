"""AgentSession (livekit-agents 1.x style) on the VoiceAssistant pipeline, end to end in a
``LocalRoom`` with the fakes: a user who speaks tone bursts (the energy VAD hears them, the
scripted STT transcribes them) or sends chat messages, a scripted LLM, a tone TTS. Every wait
is on an event, with a timeout; nothing asserts timings."""

from __future__ import annotations

import enum
import itertools
import math
from collections.abc import Callable
from typing import Annotated, Any

import gevent
import gevent.event
import gevent.pool
import numpy as np
import pytest

from syncagents import (
    Agent,
    AgentSession,
    RunContext,
    StopResponse,
    ToolError,
    function_tool,
    llm,
    rtc,
)
from syncagents.runtime import bind_job_id, current_job_id
from syncagents.testing import FakeLLM, FakeResponse, FakeSTT, FakeToolCall, FakeTTS, FakeVAD
from syncagents.testing.local_room import USER_RATE, LocalRoom
from syncagents.voice import (
    AgentStateChangedEvent,
    CloseEvent,
    CloseReason,
    ConversationItemAddedEvent,
    ErrorEvent,
    FunctionToolsExecutedEvent,
    MetricsCollectedEvent,
    SpeechHandle,
    UserInputTranscribedEvent,
    UserStateChangedEvent,
)
from syncagents.voice.docstrings import parse_docstring
from syncagents.voice.events import EVENTS
from syncagents.voice.session_assistant import HANDOFF_INTERRUPTED
from syncagents.voice_assistant import TurnMetrics

pytestmark = pytest.mark.timeout(60)

WAIT = 20.0  # generous bound for any single wait on a shared machine
FRAME = USER_RATE // 100  # 10 ms


# -- the user's side and the recorder ---------------------------------------------------------


class Mouth:
    """The user's microphone: silence, or a 440 Hz tone (speech for the energy VAD) for as
    long as told, in 10 ms frames paced by the room's user source."""

    def __init__(self, source: Any) -> None:
        self._source = source
        self._remaining = 0
        self._phase = 0
        self._t = np.arange(FRAME) / USER_RATE
        self._silence = rtc.AudioFrame(b"\0\0" * FRAME, USER_RATE, 1, FRAME)

    def speak(self, seconds: float) -> None:
        self._remaining += round(seconds * USER_RATE)

    def run(self) -> None:
        while True:
            if self._remaining > 0:
                t = self._t + self._phase / USER_RATE
                wave = np.sin(2 * math.pi * 440.0 * t) * 0.3 * 32767
                self._phase += FRAME
                self._remaining -= FRAME
                frame = rtc.AudioFrame(wave.astype(np.int16).tobytes(), USER_RATE, 1, FRAME)
            else:
                frame = self._silence
            try:
                self._source.capture_frame(frame, timeout=5)
            except TimeoutError:  # a starved machine: keep talking rather than go mute
                continue


class Ear:
    """Reads the agent's track; ``wait_voiced`` returns once that much voice was heard."""

    def __init__(self) -> None:
        self._voiced = 0.0
        self._changed = gevent.event.Event()
        self.stream: Any = None

    def listen(self, track: Any) -> None:
        self.stream = rtc.AudioStream(track, 24000, 1)
        for ev in self.stream:
            data = np.frombuffer(ev.frame.data, dtype=np.int16)
            if len(data) and int(np.abs(data).max()) > 1000:
                self._voiced += ev.frame.samples_per_channel / 24000
                woken, self._changed = self._changed, gevent.event.Event()
                woken.set()

    def wait_voiced(self, seconds: float, timeout: float = WAIT) -> None:
        with gevent.Timeout(timeout, False):
            while self._voiced < seconds:
                self._changed.wait()
        assert self._voiced >= seconds, f"the agent was not heard for {seconds} s"


class Recorder:
    """Every session event, in order; ``wait_until`` blocks until a condition on them holds."""

    def __init__(self, session: AgentSession) -> None:
        self.events: list[tuple[str, Any]] = []
        self._changed = gevent.event.Event()
        for name in sorted(EVENTS):
            session.on(name, self._recorder(name))

    def _recorder(self, name: str) -> Callable[[Any], None]:
        def record(ev: Any) -> None:
            self.events.append((name, ev))
            woken, self._changed = self._changed, gevent.event.Event()
            woken.set()

        return record

    def of(self, name: str) -> list[Any]:
        return [ev for n, ev in self.events if n == name]

    def wait_until(self, cond: Callable[[], Any], what: str, timeout: float = WAIT) -> None:
        with gevent.Timeout(timeout, False):
            while not cond():
                self._changed.wait()
        assert cond(), f"not within {timeout} s: {what}; events: {self.names()}"

    def wait_for(
        self, name: str, pred: Callable[[Any], bool] = lambda ev: True, timeout: float = WAIT
    ) -> Any:
        """The first event ``name`` matching ``pred`` (already recorded or to come)."""

        def found() -> Any:
            return next((ev for ev in self.of(name) if pred(ev)), None)

        self.wait_until(lambda: found() is not None, f"a matching {name}", timeout)
        return found()

    def said(self, text: str) -> ConversationItemAddedEvent:
        """Wait until the agent said ``text`` (its conversation item)."""
        return self.wait_for(  # type: ignore[no-any-return]
            "conversation_item_added",
            lambda ev: ev.item.role == "assistant" and ev.item.content == text,
        )

    def states(self) -> list[str]:
        return [ev.new_state for ev in self.of("agent_state_changed")]

    def wait_listening(self, nth: int) -> None:
        """Wait until the agent went back to listening ``nth`` times (1: after start)."""
        self.wait_until(
            lambda: self.states().count("listening") >= nth, f"agent listening #{nth}"
        )

    def names(self) -> list[str]:
        return [n for n, _ in self.events if n != "metrics_collected"]


class Harness:
    def __init__(
        self,
        agent: Agent,
        *,
        llm_: FakeLLM,
        transcripts: list[str] | None = None,
        stt: Any = None,
        start: bool = True,
        **options: Any,
    ) -> None:
        self.room = LocalRoom()
        self.room.connect()
        self.llm = llm_
        self.tts = FakeTTS(sample_rate=24000, seconds_per_char=0.02)
        options.setdefault("min_endpointing_delay", 0.3)
        self.session: AgentSession = AgentSession(
            vad=options.pop("vad", None) or FakeVAD(),
            stt=stt or FakeSTT(transcripts or []),
            llm=llm_,
            tts=self.tts,
            **options,
        )
        self.rec = Recorder(self.session)
        self.group = gevent.pool.Group()
        self.ear = Ear()
        self.room.track_listeners.append(lambda pub: self.group.spawn(self.ear.listen, pub.track))
        self.mouth = Mouth(self.room.user_source)
        self.group.spawn(self.mouth.run)
        self.agent = agent
        if start:
            self.session.start(room=self.room, agent=agent)

    def close(self) -> None:
        self.session.close()
        if self.ear.stream is not None:
            self.ear.stream.close()
        self.group.kill(block=True, timeout=5)
        self.room.close()


@pytest.fixture
def harnesses() -> Any:
    made: list[Harness] = []
    yield made
    for h in made:
        h.close()


def contents(chat_ctx: llm.ChatContext) -> list[tuple[str, str | None]]:
    return [(m.role, m.content) for m in chat_ctx.messages]


def tool_names(request_index: int, fake: FakeLLM) -> list[str]:
    fnc_ctx = fake.requests[request_index].fnc_ctx
    return sorted(fnc_ctx.ai_functions) if fnc_ctx is not None else []


# -- agents ---------------------------------------------------------------------------------


class Unit(enum.Enum):
    CELSIUS = "celsius"
    FAHRENHEIT = "fahrenheit"


class CallData:
    def __init__(self) -> None:
        self.lookups: list[str] = []


class Forecaster(Agent):
    """Tools with every way of describing a parameter."""

    def __init__(self) -> None:
        super().__init__(instructions="You are a weather service.", tools=[spell])
        self.contexts: list[RunContext[CallData]] = []
        self.job_ids: list[str | None] = []

    @function_tool
    def get_weather(
        self,
        context: RunContext[CallData],
        location: str,
        unit: Unit = Unit.CELSIUS,
        days: Annotated[int, llm.TypeInfo(description="How many days ahead")] = 0,
        tags: list[str] | None = None,
    ) -> str:
        """Get the weather forecast.

        The forecast is made up.

        Args:
            location: The city, e.g.
                Paris.
            unit (Unit): The temperature unit.
            days: ignored: the TypeInfo wins.

        Returns:
            The forecast, as text.
        """
        self.contexts.append(context)
        self.job_ids.append(current_job_id())
        context.userdata.lookups.append(location)
        return f"sunny in {location}"

    @function_tool
    def remember(self, context: RunContext[CallData], fact: str) -> None:
        """Note a fact about the caller (nothing to say about it)."""
        context.userdata.lookups.append(f"fact: {fact}")

    @function_tool(name="fail", description="Always fails.")
    def broken(self, context: RunContext) -> str:
        raise ToolError("the service is down, say sorry")

    def not_a_tool(self) -> None:
        """Plain methods are not offered to the model."""


@function_tool
def spell(word: str) -> str:
    """Spell a word.

    :param word: the word to spell
    """
    return "-".join(word)


def test_tool_schema_comes_from_type_hints_and_docstring_args() -> None:
    agent = Forecaster()
    fnc_ctx = agent.fnc_ctx
    assert fnc_ctx is not None
    assert list(fnc_ctx.ai_functions) == ["spell", "get_weather", "remember", "fail"]
    schema = fnc_ctx.ai_functions["get_weather"].json_schema()
    assert schema == {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Get the weather forecast.\n\nThe forecast is made up.",
            "parameters": {
                "type": "object",
                "properties": {
                    "location": {"description": "The city, e.g. Paris.", "type": "string"},
                    "unit": {
                        "description": "The temperature unit.",
                        "type": "string",
                        "enum": ["celsius", "fahrenheit"],
                    },
                    "days": {"description": "How many days ahead", "type": "integer"},
                    "tags": {"type": "array", "items": {"type": "string"}},
                },
                "required": ["location"],  # the RunContext is not the model's business
            },
        },
    }
    assert fnc_ctx.ai_functions["spell"].json_schema()["function"]["parameters"] == {
        "type": "object",
        "properties": {"word": {"description": "the word to spell", "type": "string"}},
        "required": ["word"],
    }
    fail = fnc_ctx.ai_functions["fail"].json_schema()["function"]
    assert (fail["description"], fail["parameters"]["properties"]) == ("Always fails.", {})
    # a tool stays a plain method
    assert agent.get_weather(FakeContext(), "Oslo") == "sunny in Oslo"  # type: ignore[arg-type]


class FakeContext:
    userdata = CallData()


@pytest.mark.parametrize(
    "doc",
    [
        # Google
        """Book a table.

        Args:
            people (int): How many
                guests.
            when: The time.
        Raises:
            ValueError: never.
        """,
        # Sphinx
        """Book a table.

        :param people: How many
            guests.
        :param str when: The time.
        :returns: a confirmation
        """,
        # NumPy
        """Book a table.

        Parameters
        ----------
        people : int
            How many
            guests.
        when : str
            The time.

        Returns
        -------
        str
        """,
    ],
)
def test_docstring_styles(doc: str) -> None:
    parsed = parse_docstring(doc)
    assert parsed.description == "Book a table."
    assert parsed.params == {"people": "How many guests.", "when": "The time."}


def test_tools_that_cannot_be_described_fail_when_the_agent_is_made() -> None:
    @function_tool
    def untyped(context: RunContext, city) -> str:  # type: ignore[no-untyped-def]
        return str(city)

    @function_tool(name="spell")
    def other(word: str) -> str:
        return word

    with pytest.raises(TypeError, match="city"):
        Agent(instructions="x", tools=[untyped])
    with pytest.raises(ValueError, match="duplicate"):
        Agent(instructions="x", tools=[spell, other])
    with pytest.raises(TypeError, match="async"):

        @function_tool
        async def later() -> None:
            pass


# -- tools ----------------------------------------------------------------------------------


def test_a_tool_is_called_with_its_run_context_and_its_result_fed_back(harnesses: list) -> None:
    fake = FakeLLM(
        [
            FakeResponse(
                text="Let me check.",
                tool_calls=[FakeToolCall("get_weather", {"location": "Paris", "unit": "celsius"})],
            ),
            "It is sunny in Paris.",
        ]
    )
    data = CallData()
    agent = Forecaster()
    h = Harness(agent, llm_=fake, userdata=data)
    harnesses.append(h)
    h.room.send_chat("weather in paris")
    h.rec.said("It is sunny in Paris.")
    (executed,) = h.rec.of("function_tools_executed")

    # the tool got the call's context, with the session's userdata
    (context,) = agent.contexts
    assert context.session is h.session and context.userdata is data
    assert data.lookups == ["Paris"]
    assert isinstance(context.speech_handle, SpeechHandle)
    assert context.function_call.name == "get_weather"
    assert context.function_call.arguments == {"location": "Paris", "unit": Unit.CELSIUS}

    # the first request: the agent's instructions first, its tools offered
    assert contents(fake.calls[0]) == [
        ("system", "You are a weather service."),
        ("user", "weather in paris"),
    ]
    assert tool_names(0, fake) == ["fail", "get_weather", "remember", "spell"]
    # the follow-up saw the call and its result
    assert contents(fake.calls[1])[-2:] == [
        ("assistant", "Let me check."),
        ("tool", "sunny in Paris"),
    ]
    assert isinstance(executed, FunctionToolsExecutedEvent)
    assert [(c.name, o.content) for c, o in executed.zipped()] == [
        ("get_weather", "sunny in Paris")
    ]
    assert executed.has_tool_reply and not executed.has_agent_handoff

    history = h.session.history.messages
    assert [(m.role, m.content) for m in history] == [
        ("user", "weather in paris"),
        ("assistant", "Let me check."),
        ("tool", "sunny in Paris"),
        ("assistant", "It is sunny in Paris."),
    ]
    assert history[1].tool_calls is not None
    assert history[2].tool_call_id == history[1].tool_calls[0].tool_call_id
    # the agent's own conversation is the same, without its instructions
    assert contents(agent.chat_ctx) == contents(h.session.history)


def test_tool_errors_go_to_the_model(harnesses: list) -> None:
    fake = FakeLLM([[FakeToolCall("fail")], "Sorry, the service is down."])
    h = Harness(Forecaster(), llm_=fake)
    harnesses.append(h)
    h.room.send_chat("try it")
    h.rec.said("Sorry, the service is down.")
    assert contents(fake.calls[1])[-1] == ("tool", "error: the service is down, say sorry")


def test_no_answer_to_a_tool_that_returns_nothing_or_when_a_handler_cancels_it(
    harnesses: list,
) -> None:
    fake = FakeLLM(  # no follow-up is scripted: asking for one would be an error event
        [
            [FakeToolCall("remember", {"fact": "likes rain"})],
            [FakeToolCall("get_weather", {"location": "Rome"})],
        ]
    )
    data = CallData()
    h = Harness(Forecaster(), llm_=fake, userdata=data)
    harnesses.append(h)
    h.room.send_chat("I like rain")
    first = h.rec.wait_for("function_tools_executed")
    assert not first.has_tool_reply  # None: nothing for the model to answer
    h.rec.wait_listening(2)

    h.session.on("function_tools_executed", lambda ev: ev.cancel_tool_reply())
    h.room.send_chat("weather in rome")
    h.rec.wait_until(lambda: len(h.rec.of("function_tools_executed")) == 2, "second round")
    h.rec.wait_listening(3)
    assert fake.call_count == 2 and h.rec.of("error") == []
    assert data.lookups == ["fact: likes rain", "Rome"]
    assert contents(h.session.history)[-1] == ("tool", "sunny in Rome")


# -- handoffs -------------------------------------------------------------------------------


HOOKS: list[str] = []  # which agent hooks ran, in order, across agents


class Support(Agent):
    def __init__(self, chat_ctx: llm.ChatContext | None = None) -> None:
        super().__init__(instructions="You are support.", chat_ctx=chat_ctx)

    def on_enter(self) -> None:
        HOOKS.append("support.on_enter")
        self.session.generate_reply(instructions="Introduce yourself.")

    def on_exit(self) -> None:
        HOOKS.append("support.on_exit")

    @function_tool
    def open_ticket(self, context: RunContext, summary: str) -> str:
        """Open a support ticket.

        Args:
            summary: What went wrong.
        """
        return "ticket 42"


class Reception(Agent):
    def __init__(self, bare: bool = False) -> None:
        super().__init__(instructions="You are the reception.")
        self.bare = bare

    def on_enter(self) -> None:
        HOOKS.append("reception.on_enter")

    def on_exit(self) -> None:
        HOOKS.append("reception.on_exit")

    @function_tool
    def transfer_to_support(self, context: RunContext) -> Any:
        """Hand the caller over to support."""
        support = Support(chat_ctx=self.chat_ctx)
        return support if self.bare else (support, "transferred")

    @function_tool
    def check_hours(self, context: RunContext) -> str:
        """Opening hours."""
        return "9 to 5"


def test_handoff_mid_conversation(harnesses: list) -> None:
    HOOKS.clear()
    fake = FakeLLM(
        [
            "We open at nine.",  # reception, turn 1
            [FakeToolCall("transfer_to_support")],  # reception, turn 2
            "Let me put you through.",  # reception answers the handoff's result
            "Hi, support here.",  # support's on_enter: generate_reply
            [FakeToolCall("open_ticket", {"summary": "broken"})],  # support, turn 3
            "Ticket 42 is open.",
        ]
    )
    reception = Reception()
    h = Harness(reception, llm_=fake)
    harnesses.append(h)
    h.rec.wait_until(lambda: HOOKS == ["reception.on_enter"], "reception entered")
    h.room.send_chat("when do you open")
    h.rec.said("We open at nine.")
    h.room.send_chat("my thing is broken")
    h.rec.said("Hi, support here.")
    support = h.session.current_agent
    assert isinstance(support, Support) and support.session is h.session
    assert HOOKS == ["reception.on_enter", "reception.on_exit", "support.on_enter"]
    with pytest.raises(RuntimeError):
        reception.session  # noqa: B018  # no longer running

    # the handoff: reception's tools, then reception answers the result without tools
    (executed,) = h.rec.of("function_tools_executed")
    assert executed.has_agent_handoff and executed.has_tool_reply
    assert tool_names(1, fake) == ["check_hours", "transfer_to_support"]
    assert contents(fake.calls[2])[0] == ("system", "You are the reception.")
    assert contents(fake.calls[2])[-1] == ("tool", "transferred")
    assert tool_names(2, fake) == []
    # support speaks with its own instructions and tools, from the conversation it was given
    # (reception's, up to the transfer), plus the instructions of its greeting
    assert contents(fake.calls[3]) == [
        ("system", "You are support."),
        ("user", "when do you open"),
        ("assistant", "We open at nine."),
        ("user", "my thing is broken"),
        ("system", "Introduce yourself."),
    ]
    assert tool_names(3, fake) == ["open_ticket"]

    h.room.send_chat("please open a ticket")
    h.rec.said("Ticket 42 is open.")
    assert contents(fake.calls[4])[0] == ("system", "You are support.")
    assert tool_names(4, fake) == ["open_ticket"]
    assert contents(fake.calls[5])[-1] == ("tool", "ticket 42")
    # the history has everything, across both agents
    said = [m.content for m in h.session.history.messages if m.role == "assistant" and m.content]
    assert said == [
        "We open at nine.",
        "Let me put you through.",
        "Hi, support here.",
        "Ticket 42 is open.",
    ]


def test_bare_handoff_gets_no_answer_from_the_agent_handing_over(harnesses: list) -> None:
    HOOKS.clear()
    fake = FakeLLM([[FakeToolCall("transfer_to_support")], "Hi, support here."])
    h = Harness(Reception(bare=True), llm_=fake)
    harnesses.append(h)
    h.room.send_chat("support please")
    h.rec.said("Hi, support here.")
    assert contents(fake.calls[1])[0] == ("system", "You are support.")
    assert fake.call_count == 2  # no answer to the (empty) result of the handoff
    (executed,) = h.rec.of("function_tools_executed")
    assert executed.has_agent_handoff and not executed.has_tool_reply


def test_update_agent_switches_at_once(harnesses: list) -> None:
    HOOKS.clear()
    fake = FakeLLM(["Hi, support here."])
    h = Harness(Reception(), llm_=fake)
    harnesses.append(h)
    h.session.update_agent(Support())
    h.rec.said("Hi, support here.")
    assert HOOKS[-2:] == ["reception.on_exit", "support.on_enter"]


# -- user turns -----------------------------------------------------------------------------


class Picky(Agent):
    """Ignores turns that mention "ignore", adds context to the others."""

    def __init__(self) -> None:
        super().__init__(instructions="You are picky.")
        self.seen: list[str | None] = []

    def on_user_turn_completed(
        self, turn_ctx: llm.ChatContext, new_message: llm.ChatMessage
    ) -> None:
        self.seen.append(new_message.content)
        if "ignore" in (new_message.content or ""):
            raise StopResponse()
        turn_ctx.append(role="system", text="The user is a VIP.")  # for this reply only
        new_message.content = f"{new_message.content} (checked)"  # kept


def test_stop_response_from_on_user_turn_completed_keeps_silent(harnesses: list) -> None:
    fake = FakeLLM(["Hello, VIP."])
    agent = Picky()
    h = Harness(agent, llm_=fake)
    harnesses.append(h)
    h.rec.wait_listening(1)
    h.room.send_chat("ignore this")
    h.rec.wait_listening(2)  # thinking, then listening again: the turn is over, unanswered
    assert fake.call_count == 0
    assert h.rec.of("conversation_item_added") == []
    h.room.send_chat("hello")
    h.rec.said("Hello, VIP.")
    assert agent.seen == ["ignore this", "hello"]
    assert contents(fake.calls[0]) == [
        ("system", "You are picky."),
        ("system", "The user is a VIP."),
        ("user", "hello (checked)"),
    ]
    # the ignored turn is nowhere; the edited one is kept, the hook's extra context is not
    assert contents(h.session.history) == [
        ("user", "hello (checked)"),
        ("assistant", "Hello, VIP."),
    ]
    assert contents(agent.chat_ctx) == contents(h.session.history)
    assert [ev.item.content for ev in h.rec.of("conversation_item_added")] == [
        "hello (checked)",
        "Hello, VIP.",
    ]
    assert h.tts.synthesized == ["Hello, VIP."]


# -- speeches -------------------------------------------------------------------------------


def test_generate_reply_with_instructions_and_user_input(harnesses: list) -> None:
    fake = FakeLLM(["Welcome back!", "Anything else?"])
    h = Harness(Agent(instructions="You are kind."), llm_=fake)
    harnesses.append(h)
    handle = h.session.generate_reply(instructions="Greet the user.", user_input="I am back")
    assert isinstance(handle, SpeechHandle)
    handle.wait_for_playout(timeout=WAIT)
    assert handle.done and not handle.interrupted
    assert contents(fake.calls[0]) == [
        ("system", "You are kind."),
        ("user", "I am back"),
        ("system", "Greet the user."),  # for this reply only...
    ]
    h.session.generate_reply().wait_for_playout(timeout=WAIT)
    assert contents(fake.calls[1]) == [  # ...not kept
        ("system", "You are kind."),
        ("user", "I am back"),
        ("assistant", "Welcome back!"),
    ]
    assert contents(h.session.history) == [
        ("user", "I am back"),
        ("assistant", "Welcome back!"),
        ("assistant", "Anything else?"),
    ]


def test_say_and_wait_for_playout(harnesses: list) -> None:
    h = Harness(Agent(instructions="x"), llm_=FakeLLM())
    harnesses.append(h)
    h.rec.wait_listening(1)
    handle = h.session.say("Hello there.")
    handle.wait_for_playout(timeout=WAIT)
    assert handle.done and not handle.interrupted and handle.committed_text == "Hello there."
    item = h.rec.said("Hello there.")
    assert isinstance(item, ConversationItemAddedEvent) and item.type == "conversation_item_added"
    h.rec.wait_listening(2)
    assert h.rec.states() == ["listening", "speaking", "listening"]
    assert contents(h.session.history) == [("assistant", "Hello there.")]
    quiet = h.session.say("Not in the conversation.", add_to_chat_ctx=False)
    long = h.session.say("This one takes a good while to say, " * 3)
    with pytest.raises(TimeoutError):
        long.wait_for_playout(timeout=0.05)
    long.wait_for_playout(timeout=WAIT)
    assert quiet.done
    assert [m.content for m in h.session.history.messages][-1].startswith("This one")
    assert "Not in the conversation." not in [m.content for m in h.session.history.messages]


def test_interrupt_stops_the_speech_and_drops_the_queue(harnesses: list) -> None:
    h = Harness(Agent(instructions="x"), llm_=FakeLLM())
    harnesses.append(h)
    story = "Once upon a time there was a very long story that went on and on. " * 4
    first = h.session.say(story)
    second = h.session.say("And this never plays.")
    h.ear.wait_voiced(0.5)  # some of it was heard
    h.session.interrupt()
    assert first.done and first.interrupted
    assert second.done and not second._started
    # only what was heard is in the conversation
    h.rec.wait_until(lambda: len(h.session.history.messages) == 1, "the heard part is kept")
    heard = h.session.history.messages[0].content or ""
    assert heard and story.startswith(heard) and len(heard) < len(story)

    # a speech that disallows interruptions stays, unless forced
    firm = h.session.say(story, allow_interruptions=False)
    h.rec.wait_until(lambda: h.session.agent_state == "speaking", "the agent speaks again")
    with pytest.raises(RuntimeError):
        h.session.interrupt()
    assert not firm.done
    h.session.interrupt(force=True)
    assert firm.done and firm.interrupted


class Slow(Agent):
    """Its tool blocks until released, then hands over to support."""

    def __init__(self) -> None:
        super().__init__(instructions="You are slow.")
        self.started = gevent.event.Event()
        self.release = gevent.event.Event()
        self.contexts: list[RunContext] = []
        self.saw_interrupted: list[bool] = []

    @function_tool
    def slow_lookup(self, context: RunContext) -> tuple[Agent, str]:
        """Look something up, slowly."""
        self.contexts.append(context)
        self.started.set()
        assert self.release.wait(WAIT)
        self.saw_interrupted.append(context.speech_handle.interrupted)
        return Support(), "found it"


def test_user_interrupts_during_a_tool_call(harnesses: list) -> None:
    fake = FakeLLM(
        [
            FakeResponse(text="One moment please.", tool_calls=[FakeToolCall("slow_lookup")]),
            "Okay, never mind then.",
        ]
    )
    agent = Slow()
    h = Harness(agent, llm_=fake, transcripts=["look it up", "never mind"],
                vad=FakeVAD(min_silence_duration=0.5))  # no split utterances on a busy box
    harnesses.append(h)
    h.rec.wait_listening(1)
    h.mouth.speak(0.6)
    assert agent.started.wait(WAIT), "the tool never ran"
    h.mouth.speak(1.0)  # the user cuts in while the tool runs
    (context,) = agent.contexts
    context.speech_handle.wait_for_playout(timeout=WAIT)
    assert context.speech_handle.interrupted
    agent.release.set()

    executed = h.rec.wait_for("function_tools_executed")
    h.rec.said("Okay, never mind then.")
    # the tool ran to its end; its result is recorded, but nothing answers it and the
    # handoff it asked for did not happen
    assert agent.saw_interrupted == [True]
    assert not executed.has_tool_reply and not executed.has_agent_handoff
    assert [o.content for o in executed.function_call_outputs] == [
        f"error: {HANDOFF_INTERRUPTED}"
    ]
    assert h.session.current_agent is agent
    assert fake.call_count == 2  # turn 1, then turn 2: no follow-up to the interrupted tools
    assert contents(fake.calls[1])[-1] == ("user", "never mind")
    history = contents(h.session.history)
    assert history[0] == ("user", "look it up")
    for item in [
        ("user", "never mind"),
        ("tool", f"error: {HANDOFF_INTERRUPTED}"),
        ("assistant", "Okay, never mind then."),
    ]:
        assert item in history


# -- events ---------------------------------------------------------------------------------


def test_a_spoken_turn_emits_events_with_their_payloads(harnesses: list) -> None:
    # long silences needed to end speech: a starved user feed must not split the utterance
    stt = FakeSTT(["hello there friend"], streaming=True, interim_results=True,
                  interim_interval=0.2, vad=FakeVAD(min_silence_duration=0.5))
    h = Harness(Agent(instructions="x"), llm_=FakeLLM(responder=lambda ctx: "Hi!"), stt=stt,
                start=False, vad=FakeVAD(min_silence_duration=0.5))
    harnesses.append(h)
    assert h.session.agent_state == "initializing"
    with pytest.raises(ValueError, match="unknown"):
        h.session.on("agent_started_speaking")
    h.session.start(room=h.room, agent=h.agent)
    assert h.session.agent_state == "listening"  # start() returned: the agent listens
    h.mouth.speak(0.8)
    h.rec.said("Hi!")
    h.rec.wait_listening(2)
    metrics = h.rec.wait_for("metrics_collected")

    transcripts = h.rec.of("user_input_transcribed")
    assert all(isinstance(ev, UserInputTranscribedEvent) for ev in transcripts)
    assert transcripts[-1].transcript == "hello there friend" and transcripts[-1].is_final
    assert transcripts[-1].language == "en"
    interim = [ev.transcript for ev in transcripts if not ev.is_final]
    assert interim and all("hello there friend".startswith(t) for t in interim)

    users = h.rec.of("user_state_changed")
    assert all(isinstance(ev, UserStateChangedEvent) for ev in users)
    assert [(ev.old_state, ev.new_state) for ev in users[:2]] == [
        ("listening", "speaking"),
        ("speaking", "listening"),
    ]
    agents = h.rec.of("agent_state_changed")
    assert all(isinstance(ev, AgentStateChangedEvent) for ev in agents)
    changes = [(ev.old_state, ev.new_state) for ev in agents]
    assert changes[:2] == [("initializing", "listening"), ("listening", "thinking")]
    assert ("thinking", "speaking") in changes and changes[-1] == ("speaking", "listening")
    assert all(a[1] == b[0] for a, b in itertools.pairwise(changes))  # a chain of changes
    items = [ev.item for ev in h.rec.of("conversation_item_added")]
    assert [(m.role, m.content) for m in items] == [
        ("user", "hello there friend"),
        ("assistant", "Hi!"),
    ]
    assert isinstance(metrics, MetricsCollectedEvent) and isinstance(metrics.metrics, TurnMetrics)
    assert metrics.metrics.user_text == "hello there friend"

    # in order: the transcript, the user's turn, the agent thinking, then speaking
    names = h.rec.names()
    final_at = next(i for i, (n, ev) in enumerate(h.rec.events)
                    if n == "user_input_transcribed" and ev.is_final)
    user_item_at = next(i for i, (n, _) in enumerate(h.rec.events)
                        if n == "conversation_item_added")
    assert final_at < user_item_at
    assert "function_tools_executed" not in names and "error" not in names
    assert all(ev.created_at > 0 for _, ev in h.rec.events)


def test_a_failing_llm_emits_error_and_the_session_goes_on(harnesses: list) -> None:
    boom = RuntimeError("model down")
    fake = FakeLLM([boom, "Back again."])
    h = Harness(Agent(instructions="x"), llm_=fake)
    harnesses.append(h)
    h.room.send_chat("hello")
    error = h.rec.wait_for("error")
    assert isinstance(error, ErrorEvent) and error.error is boom and error.source is h.session.llm
    h.rec.wait_listening(2)
    h.room.send_chat("hello again")
    h.rec.said("Back again.")


def test_close_emits_close_and_runs_on_exit(harnesses: list) -> None:
    HOOKS.clear()
    h = Harness(Reception(), llm_=FakeLLM())
    harnesses.append(h)
    h.rec.wait_until(lambda: HOOKS == ["reception.on_enter"], "on_enter ran")
    h.session.close()
    (closed,) = h.rec.of("close")
    assert isinstance(closed, CloseEvent) and closed.reason is CloseReason.USER_INITIATED
    assert HOOKS == ["reception.on_enter", "reception.on_exit"]
    with pytest.raises(RuntimeError):
        h.session.say("too late")
    h.session.close()  # idempotent
    assert len(h.rec.of("close")) == 1


def test_the_room_going_away_closes_the_session(harnesses: list) -> None:
    h = Harness(Agent(instructions="x"), llm_=FakeLLM())
    harnesses.append(h)
    h.room.disconnect()
    closed = h.rec.wait_for("close")
    assert closed.reason is CloseReason.JOB_SHUTDOWN


def test_user_away_after_silence_and_back_when_speaking(harnesses: list) -> None:
    h = Harness(Agent(instructions="x"), llm_=FakeLLM(), transcripts=["hi"],
                user_away_timeout=0.2)
    harnesses.append(h)
    h.rec.wait_for("user_state_changed", lambda ev: ev.new_state == "away")
    assert h.session.user_state == "away"
    h.mouth.speak(0.4)
    h.rec.wait_for("user_state_changed",
                   lambda ev: (ev.old_state, ev.new_state) == ("away", "speaking"))


def test_in_a_job_tools_and_hooks_run_for_the_job(harnesses: list) -> None:
    entered: list[str | None] = []

    class Greeter(Forecaster):
        def on_enter(self) -> None:
            entered.append(current_job_id())

    fake = FakeLLM([[FakeToolCall("get_weather", {"location": "Rome"})], "Sunny."])

    def make() -> Harness:
        return Harness(Greeter(), llm_=fake, userdata=CallData())

    g = gevent.Greenlet(make)
    bind_job_id(g, "AJ_session")
    g.start()
    h: Harness = g.get(timeout=WAIT)
    harnesses.append(h)
    h.room.send_chat("weather in rome")
    h.rec.said("Sunny.")
    assert entered == ["AJ_session"]
    assert isinstance(h.agent, Forecaster) and h.agent.job_ids == ["AJ_session"]
