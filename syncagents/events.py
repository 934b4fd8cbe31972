"""``on``/``off``/``emit``: the one synchronous event emitter behind plugins and the assistant.

Handlers run in the greenlet that emits, in registration order (so they see events in the
order they happened); they should be quick and hand slow work to a greenlet of their own. A
handler that raises is logged and does not stop the others. Names outside ``_events`` raise
``ValueError`` at registration, so a typo does not go unnoticed. Handlers are stored lazily,
so a plugin subclass that forgets ``super().__init__()`` still works.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from loguru import logger

__all__ = ["EventEmitter"]


class EventEmitter:
    """A synchronous event emitter: ``on`` / ``off`` / ``emit``.

    A subclass lists its event names in ``_events`` (registering any other name raises
    ``ValueError``). Handlers run in the emitting greenlet, in registration order; one that raises
    is logged and does not stop the others.
    """

    _events: frozenset[str] = frozenset({"metrics_collected"})

    def _handlers_of(self, event: str) -> list[Callable[..., Any]]:
        handlers: dict[str, list[Callable[..., Any]]] = self.__dict__.setdefault(
            "_event_handlers", {}
        )
        return handlers.setdefault(event, [])

    def on(self, event: str, callback: Callable[..., Any] | None = None) -> Any:
        """Register ``callback`` for ``event``; usable as a decorator (``@x.on("event")``)."""
        if event not in self._events:
            raise ValueError(
                f"unknown {type(self).__name__} event {event!r} (known: {sorted(self._events)})"
            )

        def register(fn: Callable[..., Any]) -> Callable[..., Any]:
            self._handlers_of(event).append(fn)
            return fn

        return register(callback) if callback is not None else register

    def off(self, event: str, callback: Callable[..., Any]) -> None:
        """Unregister ``callback`` from ``event``; does nothing if it was not registered."""
        handlers = self._handlers_of(event)
        if callback in handlers:
            handlers.remove(callback)

    def emit(self, event: str, *args: Any) -> None:
        """Call every handler of ``event`` with ``args``, in the calling greenlet.

        A handler that raises an ``Exception`` is logged with its traceback; the remaining handlers
        still run and nothing is raised to the caller.
        """
        for fn in list(self._handlers_of(event)):
            try:
                fn(*args)
            except Exception:
                name = type(self).__name__
                logger.opt(exception=True).error("{} {!r} handler failed", name, event)
