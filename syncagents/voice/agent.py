"""``Agent``: instructions, tools and a conversation, run by an ``AgentSession``."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from .. import llm
from .tools import build_function_context, find_function_tools

if TYPE_CHECKING:
    from .session import AgentSession

__all__ = ["Agent"]


def _snake_case(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


class Agent:
    """One role of a conversation, livekit-agents 1.x style: subclass it, pass
    ``instructions`` (the system prompt), mark methods with ``@function_tool``, override the
    hooks. Only one session runs an agent at a time.

    ``tools``: more tools (functions marked ``@function_tool``) besides the marked methods.
    ``chat_ctx``: the conversation the agent starts from (copied), e.g. the previous agent's
    ``chat_ctx`` on a handoff; by default an agent starts with an empty conversation. Tool
    schemas are built here, so a tool that cannot be described fails at construction.

    Hooks (plain blocking methods; they run in greenlets of the session, exceptions are
    logged): ``on_enter()`` when the agent takes over (a greenlet of its own: a slow one
    delays nothing), ``on_exit()`` when it hands over or the session closes,
    ``on_user_turn_completed(turn_ctx, new_message)`` before answering a user turn.
    """

    def __init__(
        self,
        *,
        instructions: str,
        tools: Sequence[Callable[..., Any]] | None = None,
        chat_ctx: llm.ChatContext | None = None,
        id: str | None = None,
    ) -> None:
        if type(self) is Agent:
            self._id = id or "default_agent"
        else:
            self._id = id or _snake_case(type(self).__name__)
        self._instructions = instructions
        self._tools: list[Callable[..., Any]] = [*(tools or ()), *find_function_tools(self)]
        self._fnc_ctx = build_function_context(self._tools)
        self._chat_ctx = chat_ctx.copy() if chat_ctx is not None else llm.ChatContext()
        self._session: AgentSession | None = None

    # -- state ---------------------------------------------------------------------------

    @property
    def id(self) -> str:
        """``default_agent`` for a plain ``Agent``, else the class name in snake case."""
        return self._id

    @property
    def label(self) -> str:
        """Same as ``id`` (used in logs)."""
        return self._id

    @property
    def instructions(self) -> str:
        """The system prompt, sent first in every request of this agent."""
        return self._instructions

    @property
    def tools(self) -> list[Callable[..., Any]]:
        """The agent's tools (a copy of the list)."""
        return list(self._tools)

    @property
    def fnc_ctx(self) -> llm.FunctionContext | None:
        """The tools as the model sees them (``ai_functions[name].json_schema()``)."""
        return self._fnc_ctx

    @property
    def chat_ctx(self) -> llm.ChatContext:
        """A copy of the agent's conversation (its instructions are not part of it: they go
        first in each request). Change it with ``update_chat_ctx``."""
        return self._chat_ctx.copy()

    @property
    def session(self) -> AgentSession:
        """The session running this agent; ``RuntimeError`` when none is."""
        if self._session is None:
            raise RuntimeError(f"agent {self._id} is not running in an AgentSession")
        return self._session

    # -- updates -------------------------------------------------------------------------

    def update_instructions(self, instructions: str) -> None:
        """New instructions, used from the next request on."""
        self._instructions = instructions

    def update_tools(self, tools: Sequence[Callable[..., Any]]) -> None:
        """Replace every tool (marked methods included) with ``tools``, from the next request
        on; e.g. ``agent.update_tools([*agent.tools, extra])``."""
        fnc_ctx = build_function_context(tools)  # fails before anything changes
        self._tools = list(tools)
        self._fnc_ctx = fnc_ctx

    def update_chat_ctx(self, chat_ctx: llm.ChatContext) -> None:
        """Replace the agent's conversation with a copy of ``chat_ctx``."""
        # in place: a running session appends to this very object
        self._chat_ctx.messages[:] = chat_ctx.copy().messages

    # -- hooks ---------------------------------------------------------------------------

    def on_enter(self) -> None:
        """Called when the agent takes over (at ``start``, or on a handoff); e.g.
        ``self.session.generate_reply(instructions="Greet the user")``."""

    def on_exit(self) -> None:
        """Called when the agent hands over to another one, or the session closes."""

    def on_user_turn_completed(
        self, turn_ctx: llm.ChatContext, new_message: llm.ChatMessage
    ) -> None:
        """Called when the user finished a turn, before the reply is generated.

        ``turn_ctx`` is a copy of the conversation for this reply only (add context for the
        model here); editing ``new_message`` changes what is kept in the conversation. Raise
        ``StopResponse`` to stay silent: the turn is then left out of the conversation.
        """

    def __repr__(self) -> str:
        return f"{type(self).__name__}(id={self._id!r})"


# The session side of an agent: only ``AgentSession`` calls these (the agent's own methods are
# the user's API; which session runs it is the session's business, kept here with the state).


def running_session(agent: Agent) -> AgentSession | None:
    """The session running ``agent``, if any."""
    return agent._session


def attach_session(agent: Agent, session: AgentSession) -> llm.ChatContext:
    """Mark ``agent`` as run by ``session`` (``RuntimeError`` when another session runs it);
    returns the agent's own conversation, which the session appends to from now on."""
    if agent._session is not None and agent._session is not session:
        raise RuntimeError(f"agent {agent.id} already runs in another AgentSession")
    agent._session = session
    return agent._chat_ctx


def detach_session(agent: Agent) -> None:
    """``agent`` is no longer run by a session."""
    agent._session = None
