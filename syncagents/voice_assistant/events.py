"""The assistant's events (the emitter itself is ``syncagents.events``)."""

from __future__ import annotations

from typing import Literal, get_args

from ..events import EventEmitter as _EventEmitter

__all__ = ["EVENTS", "EventEmitter", "EventName"]

EventName = Literal[
    "user_started_speaking",
    "user_stopped_speaking",
    "agent_started_speaking",
    "agent_stopped_speaking",
    "user_speech_committed",
    "agent_speech_committed",
    "agent_speech_interrupted",
    "function_calls_collected",
    "function_calls_finished",
    "metrics_collected",
]
EVENTS: frozenset[str] = frozenset(get_args(EventName))


class EventEmitter(_EventEmitter):
    """The assistant's emitter: only the names in ``EVENTS``."""

    _events = EVENTS
