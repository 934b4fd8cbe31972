"""Agents in the livekit-agents 1.x style, offline: an ``AgentSession`` where Ada, the front
desk of a weather line, looks the weather up with a tool and then hands the caller over to a
second agent, Echo, who repeats what it hears.

Everything runs with no network and no API key: silero VAD, pocketsphinx STT, espeak TTS, and
``RuleLLM``, a stand-in for a model built like a plugin (it follows a few rules over the
conversation and the tools it is offered). Swap in ``plugins.openai.LLM(model=...)`` for a
real model; the agents stay the same.

    syncagents console examples/agent_session.py --input examples/hello.wav --output reply.wav
    python examples/agent_session.py console        # type lines to chat, Ctrl-D to end

What to look for:

* ``Ada`` and ``Echo`` subclass ``Agent``: instructions, tools (``@function_tool`` methods,
  described to the model from their type hints and docstrings) and hooks (``on_enter``,
  ``on_user_turn_completed``);
* a tool gets a ``RunContext``: the session, the call, and ``userdata`` (``CallInfo`` here);
* ``transfer_to_echo`` returns ``(Echo(...), result)``: Ada answers the result, then Echo
  takes over with Ada's conversation;
* ``Echo.on_user_turn_completed`` raises ``StopResponse`` for turns of a single word (a cough,
  a stray "uh"), so they get no answer;
* session events (``@session.on(...)``) log tool calls and the state of the agent.
"""

from __future__ import annotations

import itertools
import json
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from loguru import logger

from syncagents import (
    Agent,
    AgentSession,
    AutoSubscribe,
    JobContext,
    RunContext,
    StopResponse,
    WorkerOptions,
    function_tool,
    llm,
)
from syncagents.plugins import espeak, pocketsphinx, silero
from syncagents.voice import AgentStateChangedEvent, CloseEvent, FunctionToolsExecutedEvent

_CONDITIONS = ("sunny", "partly cloudy", "overcast", "light rain", "windy", "foggy")


def made_up_weather(location: str) -> tuple[int, str]:
    """(degrees Celsius, conditions) for ``location``: invented, but stable for a place (a
    checksum of its name, not ``hash()``, which changes between processes)."""
    seed = zlib.crc32(" ".join(location.lower().split()).encode())
    return seed % 36 - 5, _CONDITIONS[(seed >> 8) % len(_CONDITIONS)]


@dataclass
class CallInfo:
    """What the session remembers about the call (its ``userdata``)."""

    weather_asked: list[str] = field(default_factory=list)


# -- the agents -----------------------------------------------------------------------------


class Ada(Agent):
    def __init__(self) -> None:
        super().__init__(
            instructions=(
                "You are Ada, the front desk of a weather line. Answer questions about the "
                "weather with get_weather, then hand the caller to Echo with transfer_to_echo."
            )
        )

    def on_enter(self) -> None:
        # the greeting plays in full even if the caller already talks: their turn comes next
        self.session.generate_reply(instructions="Greet the caller.", allow_interruptions=False)

    @function_tool
    def get_weather(self, context: RunContext[CallInfo], location: str) -> str:
        """Get the current weather.

        Args:
            location: The place, e.g. Paris; "your town" when the caller did not say.
        """
        # a real tool would block on an HTTP request here; that is fine in a greenlet
        context.userdata.weather_asked.append(location)
        celsius, conditions = made_up_weather(location)
        return f"{conditions} and {celsius} degrees in {location}"

    @function_tool
    def transfer_to_echo(self, context: RunContext[CallInfo]) -> tuple[Agent, str]:
        """Hand the caller over to Echo, who repeats what it hears."""
        return Echo(chat_ctx=self.chat_ctx), "Echo will take it from here"


class Echo(Agent):
    def __init__(self, chat_ctx: llm.ChatContext | None = None) -> None:
        super().__init__(
            instructions="You are Echo. You repeat what the caller says.", chat_ctx=chat_ctx
        )

    def on_enter(self) -> None:
        self.session.generate_reply(instructions="Greet the caller.")

    def on_user_turn_completed(
        self, turn_ctx: llm.ChatContext, new_message: llm.ChatMessage
    ) -> None:
        if len((new_message.content or "").split()) < 2:
            raise StopResponse()  # a cough or a stray word: not worth repeating


# -- a stand-in for a model -----------------------------------------------------------------


class RuleLLM(llm.LLM):
    """Answers like a (very simple) model would, from the conversation and the tools offered:
    greets when asked to, looks the weather up when it can, hands over when it can, and
    otherwise repeats what it heard. Built like any LLM plugin: one ``_chat`` generator."""

    def __init__(self) -> None:
        super().__init__()
        self._ids = itertools.count(1)

    def _chat(
        self,
        chat_ctx: llm.ChatContext,
        fnc_ctx: llm.FunctionContext | None,
        temperature: float | None,
    ) -> Iterator[llm.ChatChunk]:
        tools = fnc_ctx.ai_functions if fnc_ctx is not None else {}
        messages = chat_ctx.messages
        last = messages[-1] if messages else llm.ChatMessage(role="user", content="")
        name = _name(messages)
        if last.role == "system" and "greet" in (last.content or "").lower():
            offer = ("Ask me about the weather." if "get_weather" in tools
                     else "Say something and I will repeat it.")
            yield from self._text(f"Hello, I am {name}. {offer}")
        elif last.role == "tool":
            if _called(messages, last) == "get_weather":
                yield from self._text(f"It is {last.content}.")
                if "transfer_to_echo" in tools:
                    yield self._call("transfer_to_echo", {})
            else:
                yield from self._text(f"{last.content}.")
        elif last.role == "user" and "get_weather" in tools:
            yield from self._text("Let me check.")
            yield self._call("get_weather", {"location": _place(last.content or "")})
        elif last.role == "user":
            heard = (last.content or "").strip()
            yield from self._text(f"You said: {heard}." if heard else "I did not catch that.")

    def _text(self, text: str) -> Iterator[llm.ChatChunk]:
        for word in text.split(" "):
            yield llm.ChatChunk(choices=[llm.Choice(delta=llm.ChoiceDelta(content=word + " "))])

    def _call(self, name: str, arguments: dict[str, Any]) -> llm.ChatChunk:
        call = llm.FunctionCallInfo.create(
            tool_call_id=f"call_{next(self._ids)}", name=name, raw_arguments=json.dumps(arguments)
        )
        return llm.ChatChunk(choices=[llm.Choice(delta=llm.ChoiceDelta(tool_calls=[call]))])


def _name(messages: list[llm.ChatMessage]) -> str:
    """The agent's name, from its instructions ("You are Ada, ...")."""
    first = messages[0].content if messages and messages[0].role == "system" else ""
    match = re.search(r"You are (\w+)", first or "")
    return match.group(1) if match else "your assistant"


def _called(messages: list[llm.ChatMessage], result: llm.ChatMessage) -> str:
    """The name of the tool whose result ``result`` is."""
    for msg in messages:
        for call in msg.tool_calls or ():
            if call.tool_call_id == result.tool_call_id:
                return call.name
    return ""


def _place(text: str) -> str:
    """A capitalized word of ``text`` (typed chat), else "your town" (speech is lowercase)."""
    words = [w.strip(".,!?") for w in text.split()[1:]]
    places = [w for w in words if w[:1].isupper()]
    return places[-1] if places else "your town"


# -- the job --------------------------------------------------------------------------------


def prewarm() -> dict[str, Any]:
    # loaded once per process, before the worker registers: jobs start without model loading
    return {"vad": silero.VAD(), "stt": pocketsphinx.STT()}


def entrypoint(ctx: JobContext) -> None:
    ctx.connect(auto_subscribe=AutoSubscribe.AUDIO_ONLY)
    participant = ctx.wait_for_participant()
    models = ctx.userdata or prewarm()
    session: AgentSession[CallInfo] = AgentSession(
        vad=models["vad"],
        stt=models["stt"],
        llm=RuleLLM(),
        tts=espeak.TTS(),
        userdata=CallInfo(),
    )

    @session.on("function_tools_executed")
    def _tools(ev: FunctionToolsExecutedEvent) -> None:
        for call, output in ev.zipped():
            logger.info("tool {}({}) -> {!r}", call.name, call.raw_arguments, output.content)

    @session.on("agent_state_changed")
    def _state(ev: AgentStateChangedEvent) -> None:
        logger.debug("agent {} -> {}", ev.old_state, ev.new_state)

    @session.on("close")
    def _closed(ev: CloseEvent) -> None:
        logger.info("session closed ({}); weather asked for: {}", ev.reason.value,
                    session.userdata.weather_asked)

    # returns once Ada listens; her on_enter greets meanwhile
    session.start(room=ctx.room, agent=Ada(), participant=participant)


opts = WorkerOptions(entrypoint_fnc=entrypoint, prewarm_fnc=prewarm)

if __name__ == "__main__":
    from syncagents import cli

    cli.run_app(opts)
