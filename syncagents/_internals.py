"""The private internals of other libraries that syncagents relies on, checked at import.

Each of these is a deliberate dependency on something a library does not promise (setup.py
pins the minor versions verified to work). If a new release moves one, syncagents must fail
loudly at import, naming the library and its version — never fall back silently: the FFI
deadlock in NOTES.md (patched locks taken from native threads) would come back unnoticed.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Callable
from typing import Any

__all__ = ["InternalsChanged", "check_gevent", "check_livekit", "check_loguru", "check_websocket"]


class InternalsChanged(ImportError):
    """A library no longer has an internal that syncagents relies on."""


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "?"


def _require(dist: str, what: str, ok: Callable[[], Any]) -> None:
    try:
        present = bool(ok())
    except Exception:
        present = False
    if not present:
        raise InternalsChanged(
            f"syncagents relies on {what} in {dist}, which {dist} {_version(dist)} does not "
            f"have; install a {dist} version that setup.py allows"
        )


def check_livekit(ffi_client: Any, audio_source_cls: Any) -> None:
    """``livekit.rtc._ffi_client`` and ``AudioSource`` as the bridge uses them."""
    _require("livekit", "_ffi_client.threading (swapped for real locks)",
             lambda: hasattr(ffi_client, "threading"))
    _require("livekit", "FfiClient._instance_lock",
             lambda: hasattr(ffi_client.FfiClient, "_instance_lock"))
    _require("livekit", "FfiQueue with _lock and _subscribers",
             lambda: "_subscribers" in ffi_client.FfiQueue.__init__.__code__.co_names
             and "_lock" in ffi_client.FfiQueue.__init__.__code__.co_names)
    _require("livekit", "FfiClient._dispose", lambda: callable(ffi_client.FfiClient._dispose))
    _require("livekit", "AudioSource._release_waiter and _ffi_handle",
             lambda: callable(audio_source_cls._release_waiter)
             and "_ffi_handle" in audio_source_cls.__init__.__code__.co_names)


def check_loguru(locks_machinery: Any) -> None:
    """``loguru._locks_machinery`` creates its locks through a ``threading`` module global."""
    _require("loguru", "_locks_machinery.threading", lambda: hasattr(locks_machinery, "threading"))


def check_websocket(websocket_cls: Any) -> None:
    """``websocket.WebSocket._recv(bufsize)``, which the worker's buffered socket overrides."""
    _require("websocket-client", "WebSocket._recv(bufsize)",
             lambda: websocket_cls._recv.__code__.co_varnames[:2] == ("self", "bufsize"))


def check_gevent(greenlet_cls: Any) -> None:
    """gevent ``Greenlet.spawn_tree_locals`` is assignable and inherited (jobs are built on it);
    the hub's ``handle_error`` can be replaced per instance."""

    def spawn_tree_locals_work() -> bool:
        g = greenlet_cls(lambda: None)
        marker: dict[str, Any] = {}
        g.spawn_tree_locals = marker
        return g.spawn_tree_locals is marker

    _require("gevent", "an assignable Greenlet.spawn_tree_locals", spawn_tree_locals_work)
