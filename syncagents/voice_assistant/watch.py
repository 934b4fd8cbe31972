"""Watching the assistants started in a room: the console follows a conversation this way,
and so can a user's own monitoring, without the assistant knowing who watches."""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

from loguru import logger

__all__ = ["watch_assistants"]

# room -> callbacks; weak, so a watched room that is dropped takes its watchers with it
_watchers: weakref.WeakKeyDictionary[Any, list[Callable[[Any], None]]] = (
    weakref.WeakKeyDictionary()
)


def watch_assistants(room: Any, callback: Callable[[Any], None]) -> Callable[[], None]:
    """Call ``callback(assistant)`` for every ``VoiceAssistant`` (and ``AgentSession``'s
    assistant) started in ``room`` from now on, in the greenlet that started it, right after
    its voice was published. Returns a function that stops watching."""
    _watchers.setdefault(room, []).append(callback)

    def unwatch() -> None:
        callbacks = _watchers.get(room, [])
        if callback in callbacks:
            callbacks.remove(callback)

    return unwatch


def assistant_started(room: Any, assistant: Any) -> None:
    """Tell the watchers of ``room`` that ``assistant`` started there (a watcher that raises
    is logged; the assistant starts anyway)."""
    for callback in list(_watchers.get(room, ())):
        try:
            callback(assistant)
        except Exception:
            logger.opt(exception=True).error("assistant watcher {!r} failed", callback)
