"""The session's events (``@session.on(name)``) and their payloads, named like livekit-agents
1.x's (``livekit.agents.voice.events``) and carrying the same fields where ours exist."""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, get_args

from .. import llm
from ..events import EventEmitter

if TYPE_CHECKING:
    from ..voice_assistant import TurnMetrics

__all__ = [
    "EVENTS",
    "AgentState",
    "AgentStateChangedEvent",
    "CloseEvent",
    "CloseReason",
    "ConversationItemAddedEvent",
    "ErrorEvent",
    "EventTypes",
    "FunctionToolsExecutedEvent",
    "MetricsCollectedEvent",
    "SessionEventEmitter",
    "UserInputTranscribedEvent",
    "UserState",
    "UserStateChangedEvent",
]

EventTypes = Literal[
    "user_input_transcribed",
    "conversation_item_added",
    "agent_state_changed",
    "user_state_changed",
    "function_tools_executed",
    "metrics_collected",
    "error",
    "close",
]
EVENTS: frozenset[str] = frozenset(get_args(EventTypes))

AgentState = Literal["initializing", "listening", "thinking", "speaking"]
"""``initializing`` until ``start()``; ``thinking`` while a reply is prepared or tools run;
``speaking`` while its audio plays; else ``listening``."""
UserState = Literal["speaking", "listening", "away"]
"""``speaking`` while the VAD hears the user; ``away`` after ``user_away_timeout`` seconds in
which neither side said anything."""


class SessionEventEmitter(EventEmitter):
    """The session's emitter: only the names in ``EVENTS``."""

    _events = EVENTS


def _now() -> float:
    return time.time()


@dataclass
class UserInputTranscribedEvent:
    """A transcript of the user's speech: interim (``is_final=False``, with a streaming STT
    that sends them) or final."""

    transcript: str
    is_final: bool
    speaker_id: str | None = None
    language: str | None = None
    created_at: float = field(default_factory=_now)
    type: Literal["user_input_transcribed"] = field(default="user_input_transcribed", init=False)


@dataclass
class ConversationItemAddedEvent:
    """A message joined the conversation (``session.history``): a user turn (once it is
    answered: after ``on_user_turn_completed``), or what the agent said (only what was heard,
    when interrupted). Tool calls and results go into the history without this event."""

    item: llm.ChatMessage
    created_at: float = field(default_factory=_now)
    type: Literal["conversation_item_added"] = field(
        default="conversation_item_added", init=False
    )


@dataclass
class AgentStateChangedEvent:
    """The agent's state changed (see ``AgentState``)."""

    old_state: AgentState
    new_state: AgentState
    created_at: float = field(default_factory=_now)
    type: Literal["agent_state_changed"] = field(default="agent_state_changed", init=False)


@dataclass
class UserStateChangedEvent:
    """The user's state changed (see ``UserState``)."""

    old_state: UserState
    new_state: UserState
    created_at: float = field(default_factory=_now)
    type: Literal["user_state_changed"] = field(default="user_state_changed", init=False)


@dataclass
class FunctionToolsExecutedEvent:
    """A round of tool calls finished. ``function_calls[i]`` is answered by
    ``function_call_outputs[i]`` (the ``tool`` message the model gets).

    Handlers run before the session decides what follows, so they may call
    ``cancel_tool_reply()`` (no follow-up answer) or ``cancel_agent_handoff()``.
    """

    function_calls: list[llm.FunctionCallInfo]
    function_call_outputs: list[llm.ChatMessage]
    created_at: float = field(default_factory=_now)
    type: Literal["function_tools_executed"] = field(
        default="function_tools_executed", init=False
    )
    _reply_required: bool = field(default=False, repr=False)
    _handoff_required: bool = field(default=False, repr=False)

    def zipped(self) -> list[tuple[llm.FunctionCallInfo, llm.ChatMessage]]:
        """``(call, output)`` pairs."""
        return list(zip(self.function_calls, self.function_call_outputs))

    @property
    def has_tool_reply(self) -> bool:
        """The model will answer the results (some tool returned something)."""
        return self._reply_required

    @property
    def has_agent_handoff(self) -> bool:
        """A tool handed the conversation to another agent."""
        return self._handoff_required

    def cancel_tool_reply(self) -> None:
        """No follow-up answer to these results."""
        self._reply_required = False

    def cancel_agent_handoff(self) -> None:
        """Keep the current agent."""
        self._handoff_required = False


@dataclass
class MetricsCollectedEvent:
    """Figures of one answered user turn (``voice_assistant.TurnMetrics``)."""

    metrics: TurnMetrics
    created_at: float = field(default_factory=_now)
    type: Literal["metrics_collected"] = field(default="metrics_collected", init=False)


@dataclass
class ErrorEvent:
    """A reply failed (e.g. the LLM raised): it ends, the session goes on. ``source`` is
    the plugin it came from."""

    error: BaseException
    source: Any
    created_at: float = field(default_factory=_now)
    type: Literal["error"] = field(default="error", init=False)


class CloseReason(str, enum.Enum):
    """Why the session closed."""

    ERROR = "error"
    JOB_SHUTDOWN = "job_shutdown"
    PARTICIPANT_DISCONNECTED = "participant_disconnected"
    USER_INITIATED = "user_initiated"


@dataclass
class CloseEvent:
    """The session closed (``close()``, or the room went away)."""

    reason: CloseReason
    error: BaseException | None = None
    created_at: float = field(default_factory=_now)
    type: Literal["close"] = field(default="close", init=False)
