"""``RoomEvents``: the event side every room shares — ``rtc.Room`` (a real LiveKit room) and
``testing.LocalRoom`` (an in-process one) — so that agents, jobs and the console treat them
alike.

Handlers are registered by event name (livekit's names) and each call runs in its own
greenlet, never in the code that reported the event: in the job the room belongs to (its
greenlets carry the job id and die with the job) or, outside any job, in a group the room
owns. It lives outside ``syncagents.rtc`` so that using it never loads livekit's native
library.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gevent
import gevent.pool
from greenlet import getcurrent
from loguru import logger

from .runtime import JobScope, bind_job_id, current_job_id, job_scope_of

__all__ = ["RoomEvents"]


class RoomEvents:
    """Event handlers of a room, each call in a greenlet of the room's job.

    A room made inside a job belongs to that job; :meth:`run_handlers_in` hands a room made
    elsewhere (the console's local room) to a job.
    """

    def __init__(self) -> None:
        self._handlers: dict[str, list[Callable[..., Any]]] = {}
        self._group = gevent.pool.Group()  # handler greenlets when the room is in no job
        self._scope: JobScope | None = job_scope_of(getcurrent())
        self._job_id = current_job_id()

    def on(self, event: str, callback: Callable[..., Any] | None = None) -> Any:
        """Register ``callback`` for ``event``; also usable as ``@room.on(event)``.

        Each call runs in its own greenlet; a handler that raises is logged and the others
        still run.
        """

        def register(fn: Callable[..., Any]) -> Callable[..., Any]:
            self._handlers.setdefault(event, []).append(fn)
            self._handler_added(event)
            return fn

        return register(callback) if callback is not None else register

    def off(self, event: str, callback: Callable[..., Any]) -> None:
        """Unregister ``callback`` from ``event``; does nothing if it was not registered."""
        handlers = self._handlers.get(event, [])
        if callback in handlers:
            handlers.remove(callback)

    def run_handlers_in(self, scope: JobScope) -> None:
        """From now on, handler greenlets belong to ``scope`` (a job's): they carry its job
        id and are killed when it ends."""
        self._scope = scope
        self._job_id = scope.job_id

    # -- for the rooms themselves ------------------------------------------------------------
    def _handler_added(self, event: str) -> None:
        """A handler for ``event`` was registered (``rtc.Room`` subscribes to livekit then)."""

    def _has_handlers(self, event: str) -> bool:
        return bool(self._handlers.get(event))

    def _spawn(self, fn: Callable[..., Any], *args: Any) -> gevent.Greenlet:
        """``fn(*args)`` in a greenlet owned like the handlers; ``RuntimeError`` once the
        room's job has ended (nothing of the job may run after its end)."""
        if self._scope is not None:
            return self._scope.spawn(fn, *args)
        g = self._group.spawn(fn, *args)
        if self._job_id is not None:
            bind_job_id(g, self._job_id)
        return g

    def _emit(self, event: str, *args: Any) -> list[gevent.Greenlet]:
        """Call every handler of ``event`` with ``args``, each in its own greenlet."""
        spawned = []
        for handler in list(self._handlers.get(event, ())):
            try:
                spawned.append(self._spawn(_run_handler, event, handler, args))
            except RuntimeError as exc:  # the room's job has ended: nobody handles it now
                logger.debug("room event {!r} dropped: {}", event, exc)
                break
        return spawned

    def _stop_handlers(self) -> None:
        """Kill the handler greenlets the room owns itself (a job kills its own)."""
        self._group.kill(block=False)


def _run_handler(event: str, handler: Callable[..., Any], args: tuple[Any, ...]) -> None:
    try:
        handler(*args)
    except Exception:
        logger.opt(exception=True).error("room event handler for {!r} failed", event)
