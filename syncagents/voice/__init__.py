"""Agents in the livekit-agents 1.x style, blocking: ``Agent``, ``AgentSession``,
``@function_tool``, ``RunContext``, handoffs — on the ``VoiceAssistant`` pipeline.

::

    class Receptionist(Agent):
        def __init__(self) -> None:
            super().__init__(instructions="You answer the phone of a weather service.")

        def on_enter(self) -> None:
            self.session.generate_reply(instructions="Greet the caller.")

        @function_tool
        def get_weather(self, context: RunContext, location: str) -> str:
            \"\"\"Get the current weather.

            Args:
                location: The city, e.g. Paris.
            \"\"\"
            return f"sunny in {location}"

    session = AgentSession(vad=..., stt=..., llm=..., tts=...)
    session.start(room=ctx.room, agent=Receptionist())

Modules: ``agent`` (``Agent``), ``session`` (``AgentSession``), ``tools`` (``function_tool``,
``StopResponse``, ``ToolError``), ``run_context``, ``events`` (the event payloads),
``docstrings`` (``Args:`` parsing), ``session_assistant`` (the bridge to the pipeline).
"""

from __future__ import annotations

from ..voice_assistant import SpeechHandle
from .agent import Agent
from .events import (
    AgentState,
    AgentStateChangedEvent,
    CloseEvent,
    CloseReason,
    ConversationItemAddedEvent,
    ErrorEvent,
    FunctionToolsExecutedEvent,
    MetricsCollectedEvent,
    UserInputTranscribedEvent,
    UserState,
    UserStateChangedEvent,
)
from .run_context import RunContext
from .session import AgentSession
from .tools import StopResponse, ToolError, function_tool

__all__ = [
    "Agent",
    "AgentSession",
    "AgentState",
    "AgentStateChangedEvent",
    "CloseEvent",
    "CloseReason",
    "ConversationItemAddedEvent",
    "ErrorEvent",
    "FunctionToolsExecutedEvent",
    "MetricsCollectedEvent",
    "RunContext",
    "SpeechHandle",
    "StopResponse",
    "ToolError",
    "UserInputTranscribedEvent",
    "UserState",
    "UserStateChangedEvent",
    "function_tool",
]
