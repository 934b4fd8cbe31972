"""Blocking ``Room``: connect/disconnect block the calling greenlet; event handlers run in
greenlets (never on the asyncio thread), owned by the room or by the job that set a spawner."""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

import gevent
import gevent.pool
from loguru import logger

from .. import _bridge
from ..runtime import bind_job_id, current_job_id
from ._blocking import BlockingProxy, lk
from .participant import LocalParticipant

Spawner = Callable[..., Any]

_live_rooms: weakref.WeakSet[Room] = weakref.WeakSet()
_exit_hook_installed = False


async def _disconnect_live_rooms() -> None:
    # Rooms still connected at interpreter exit are closed before the loop stops, so the Rust
    # runtime is not torn down under a live connection (NOTES.md: a panic at exit otherwise).
    for room in list(_live_rooms):
        lk_room = room._lk
        if lk_room is not None and lk_room.isconnected():
            try:
                await lk_room.disconnect()
            except Exception:
                pass


class Room(BlockingProxy):
    """``livekit.rtc.Room`` in blocking style.

    The livekit room is created on the bridge loop at first need (so a job that never joins a
    room costs nothing). Handlers registered with :meth:`on` are attached then.
    """

    def __init__(self) -> None:
        self._lk: Any = None
        self._handlers: dict[str, list[Callable[..., Any]]] = {}
        self._attached: set[str] = set()
        self._group = gevent.pool.Group()  # handler greenlets when no job spawner is set
        self._spawner: Spawner | None = None
        self._job_id = current_job_id()
        self._local: LocalParticipant | None = None

    # -- plumbing ---------------------------------------------------------------------------
    def _set_spawner(self, spawner: Spawner | None) -> None:
        """Run handler greenlets through ``spawner(fn, *args)`` (a job group's spawn)."""
        self._spawner = spawner

    def _ensure(self) -> Any:
        if self._lk is None:
            events = list(self._handlers)

            def create() -> Any:  # on the loop: livekit's Room grabs the running loop
                room = lk.Room(loop=_bridge.loop())
                for event in events:
                    room.on(event, self._forwarder(event))
                return room

            self._lk = _bridge.call(create)
            self._attached.update(events)
            for event in list(self._handlers):  # registered by another greenlet meanwhile
                self._attach(event)
        return self._lk

    def _forwarder(self, event: str) -> Callable[..., None]:
        def forward(*args: Any) -> None:  # runs on the asyncio thread: hop to the hub
            _bridge.post_to_hub(self._dispatch, event, args)

        return forward

    def _attach(self, event: str) -> None:
        if self._lk is None or event in self._attached:
            return
        self._attached.add(event)
        # EventEmitter.on is not thread-safe against emit on the loop thread: register there.
        _bridge.call(self._lk.on, event, self._forwarder(event))

    def _dispatch(self, event: str, args: tuple[Any, ...]) -> None:
        for handler in list(self._handlers.get(event, ())):
            if self._spawner is not None:
                self._spawner(self._run_handler, event, handler, args)
            else:
                g = self._group.spawn(self._run_handler, event, handler, args)
                if self._job_id is not None:
                    bind_job_id(g, self._job_id)

    @staticmethod
    def _run_handler(event: str, handler: Callable[..., Any], args: tuple[Any, ...]) -> None:
        try:
            handler(*args)
        except Exception:
            logger.opt(exception=True).error("room event handler for {!r} failed", event)

    # -- events -----------------------------------------------------------------------------
    def on(self, event: str, callback: Callable[..., Any] | None = None) -> Any:
        """Register a handler (``@room.on("participant_connected")`` or ``room.on(ev, fn)``).

        Same event names and arguments as ``livekit.rtc.Room``; each call runs in its own
        greenlet.
        """

        def register(fn: Callable[..., Any]) -> Callable[..., Any]:
            self._handlers.setdefault(event, []).append(fn)
            self._attach(event)
            return fn

        if callback is not None:
            return register(callback)
        return register

    def off(self, event: str, callback: Callable[..., Any]) -> None:
        handlers = self._handlers.get(event, [])
        if callback in handlers:
            handlers.remove(callback)

    # -- connection -------------------------------------------------------------------------
    def connect(
        self, url: str, token: str, options: Any = None, timeout: float | None = 10
    ) -> None:
        """Connect; raises ``rtc.ConnectError`` (refused, bad token) or ``TimeoutError``."""
        global _exit_hook_installed
        lk_room = self._ensure()
        opts = options if options is not None else lk.RoomOptions()
        try:
            _bridge.run(lk_room.connect(url, token, opts), timeout=timeout)
        except TimeoutError:
            raise TimeoutError(f"could not connect to {url} within {timeout} s") from None
        except lk.ConnectError as exc:
            raise lk.ConnectError(f"could not connect to {url}: {exc.message}") from None
        if not _exit_hook_installed:
            _exit_hook_installed = True
            _bridge.add_exit_hook(_disconnect_live_rooms)
        _live_rooms.add(self)

    def disconnect(self, timeout: float | None = 10) -> None:
        """Leave the room (no-op when not connected). Handler greenlets owned by the room die."""
        if self._lk is not None and self._lk.isconnected():
            try:
                _bridge.run(self._lk.disconnect(), timeout=timeout)
            finally:
                _live_rooms.discard(self)
        self._group.kill(block=False)

    def isconnected(self) -> bool:
        return self._lk is not None and bool(self._lk.isconnected())

    @property
    def name(self) -> str:
        return "" if self._lk is None else str(self._lk.name)

    @property
    def connection_state(self) -> int:
        if self._lk is None:
            return int(lk.ConnectionState.CONN_DISCONNECTED)
        return int(self._lk.connection_state)

    @property
    def local_participant(self) -> LocalParticipant:
        if self._lk is None or not self._lk.isconnected():
            raise RuntimeError("cannot access local participant before connecting")
        if self._local is None:
            self._local = LocalParticipant(self._lk.local_participant)
        return self._local

    @property
    def remote_participants(self) -> dict[str, Any]:
        if self._lk is None:
            return {}
        return dict(self._lk.remote_participants)

    def __repr__(self) -> str:
        return f"rtc.Room(name={self.name!r}, connected={self.isconnected()})"
