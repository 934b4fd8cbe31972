"""The assistant's events and a small synchronous emitter for them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, get_args

from loguru import logger

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


class EventEmitter:
    """``on``/``off``/``emit`` for the names in ``EVENTS``.

    Handlers run in the greenlet that emits, in registration order (so they see events in the
    order they happened); they should be quick and hand slow work to a greenlet of their own.
    A handler that raises is logged and does not stop the others. Unknown names raise
    ``ValueError`` at registration, so a typo does not go unnoticed.
    """

    def __init__(self) -> None:
        self._handlers: dict[str, list[Callable[..., Any]]] = {}

    def on(self, event: EventName, callback: Callable[..., Any] | None = None) -> Any:
        """Register ``callback`` for ``event``; usable as ``@assistant.on("event")``."""
        if event not in EVENTS:
            raise ValueError(f"unknown VoiceAssistant event {event!r} (known: {sorted(EVENTS)})")

        def register(fn: Callable[..., Any]) -> Callable[..., Any]:
            self._handlers.setdefault(event, []).append(fn)
            return fn

        return register(callback) if callback is not None else register

    def off(self, event: EventName, callback: Callable[..., Any]) -> None:
        handlers = self._handlers.get(event, [])
        if callback in handlers:
            handlers.remove(callback)

    def emit(self, event: EventName, *args: Any) -> None:
        for fn in list(self._handlers.get(event, ())):
            try:
                fn(*args)
            except Exception:
                logger.opt(exception=True).error("VoiceAssistant {!r} handler failed", event)
