"""Blocking ``Room``: connect/disconnect block the calling greenlet; event handlers run in
greenlets (never on the asyncio thread), owned by the room or by the job that set a spawner,
and get facade objects (participants, publications, tracks), never livekit's own."""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

from .. import _bridge
from ..room_events import RoomEvents
from . import _registry, data_streams
from ._blocking import BlockingProxy, lk
from .participant import LocalParticipant

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


class Room(RoomEvents, BlockingProxy):
    """``livekit.rtc.Room`` in blocking style.

    The livekit room is created on the bridge loop at first need (so a job that never joins a
    room costs nothing). Handlers registered with :meth:`on` are attached then.
    """

    def __init__(self) -> None:
        self._lk: Any = None
        super().__init__()
        self._attached: set[str] = set()
        self._local: LocalParticipant | None = None

    # -- plumbing ---------------------------------------------------------------------------
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

    def _handler_added(self, event: str) -> None:
        self._attach(event)

    def _dispatch(self, event: str, args: tuple[Any, ...]) -> None:
        if not self._has_handlers(event):
            return
        self._local_facade()  # events about ourselves must find the facade of record
        self._emit(event, *(_registry.convert(a) for a in args))

    # -- events -----------------------------------------------------------------------------
    def on(self, event: str, callback: Callable[..., Any] | None = None) -> Any:
        """Register a handler (``@room.on("participant_connected")`` or ``room.on(ev, fn)``).

        Same event names and arguments as ``livekit.rtc.Room``, except that livekit's
        participants, publications and tracks arrive as their facades (``rtc.RemoteParticipant``,
        ``rtc.RemoteTrackPublication``, ``rtc.RemoteAudioTrack``, ...); each call runs in its own
        greenlet.
        """
        return super().on(event, callback)

    # -- connection -------------------------------------------------------------------------
    def connect(
        self, url: str, token: str, options: Any = None, timeout: float | None = 10
    ) -> None:
        """Connect; raises ``rtc.ConnectError`` (refused, bad token) or ``TimeoutError``."""
        global _exit_hook_installed
        lk_room = self._ensure()
        opts = options if options is not None else lk.RoomOptions()
        try:
            # never cancelled half-way (see _bridge.run); one that completes after we gave up
            # is disconnected again
            _bridge.run(lk_room.connect(url, token, opts), timeout=timeout, cancel=False,
                        undo=lk_room.disconnect)
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
        self._stop_handlers()

    def isconnected(self) -> bool:
        """Whether the room is connected (``False`` before ``connect()``)."""
        return self._lk is not None and bool(self._lk.isconnected())

    @property
    def name(self) -> str:
        """The room's name (``""`` before ``connect()``)."""
        return "" if self._lk is None else str(self._lk.name)

    @property
    def connection_state(self) -> int:
        """The ``ConnectionState`` value (``CONN_DISCONNECTED`` before ``connect()``)."""
        if self._lk is None:
            return int(lk.ConnectionState.CONN_DISCONNECTED)
        return int(self._lk.connection_state)

    def _local_facade(self) -> LocalParticipant | None:
        lk_local = None if self._lk is None else self._lk._local_participant
        if lk_local is None:
            return None
        if self._local is None or self._local._lk is not lk_local:  # first or new connection
            self._local = LocalParticipant(lk_local, spawn=self._spawn)
            _registry.adopt(lk_local, self._local)
        return self._local

    @property
    def local_participant(self) -> LocalParticipant:
        """The agent's own participant (after :meth:`connect`)."""
        local = self._local_facade() if self.isconnected() else None
        if local is None:
            raise RuntimeError("cannot access local participant before connecting")
        return local

    @property
    def remote_participants(self) -> dict[str, Any]:
        """The other participants by identity (``rtc.RemoteParticipant`` facades, a snapshot)."""
        if self._lk is None:
            return {}
        # dict() copies livekit's dict in one step, safe while the loop thread changes it
        return {
            identity: _registry.facade(p)
            for identity, p in dict(self._lk.remote_participants).items()
        }

    @property
    def metadata(self) -> str:
        """The room's metadata."""
        return "" if self._lk is None else str(self._lk.metadata)

    @property
    def sid(self) -> str:
        """The room's server id; blocks (up to 10 s) until the server sent it."""
        return self.get_sid(timeout=10)

    def get_sid(self, timeout: float | None = None) -> str:
        """The room's server id, waiting for the server to send it; ``RuntimeError`` when
        the room is not connected."""
        if self._lk is None:
            raise RuntimeError("cannot get sid of a disconnected room")
        known = self._lk._info.sid
        if known:
            return str(known)

        async def wait_sid() -> str:
            return str(await self._lk.sid)  # livekit's sid is an async property

        return _bridge.run(wait_sid(), timeout=timeout)

    # -- statistics and data streams --------------------------------------------------------
    def get_stats(self, timeout: float | None = None) -> Any:
        """WebRTC statistics of the connection: ``rtc.RtcStats`` with ``publisher_stats``
        and ``subscriber_stats`` (lists of ``rtc.stats.RtcStats``)."""
        if not self.isconnected():
            raise RuntimeError("the room isn't connected")
        return _bridge.run(self._lk.get_rtc_stats(), timeout=timeout)

    get_rtc_stats = get_stats

    def register_text_stream_handler(self, topic: str, handler: Callable[..., Any]) -> None:
        """Run ``handler(reader, participant_identity)`` in a greenlet for every text stream on
        ``topic``; ``reader`` iterates ``str`` chunks (``read_all()``, ``info``). One handler
        per topic (``ValueError`` otherwise)."""
        data_streams.register_handler(self._ensure(), "text", topic, handler, self._spawn)

    def unregister_text_stream_handler(self, topic: str) -> None:
        """Forget the text stream handler of ``topic``."""
        if self._lk is not None:
            data_streams.unregister_handler(self._lk, "text", topic)

    def register_byte_stream_handler(self, topic: str, handler: Callable[..., Any]) -> None:
        """Run ``handler(reader, participant_identity)`` in a greenlet for every byte stream on
        ``topic``; ``reader`` iterates ``bytes`` chunks (``read_all()``, ``info``). One handler
        per topic (``ValueError`` otherwise)."""
        data_streams.register_handler(self._ensure(), "byte", topic, handler, self._spawn)

    def unregister_byte_stream_handler(self, topic: str) -> None:
        """Forget the byte stream handler of ``topic``."""
        if self._lk is not None:
            data_streams.unregister_handler(self._lk, "byte", topic)

    def __repr__(self) -> str:
        return f"rtc.Room(name={self.name!r}, connected={self.isconnected()})"
