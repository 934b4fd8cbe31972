"""The registry of ``local://`` room URLs (see :mod:`syncagents.testing.local_room`).

Kept apart from ``local_room`` so that handing out URLs (``DispatchServer`` does for every
assignment) does not load the livekit FFI: the rooms themselves are made on first use.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

__all__ = ["LOCAL_URL_PREFIX", "open_local_room", "register_local_room", "unregister_local_room"]

LOCAL_URL_PREFIX = "local://"  # JobContext checks this prefix too (without importing us)

_local_rooms: dict[str, Callable[[], Any]] = {}


def register_local_room(room: Any, key: str | None = None) -> str:
    """Make ``room`` (a ``LocalRoom``) reachable at a ``local://`` URL of this process and
    return the URL.

    ``room`` may be a callable that returns the room, made on first use (a dispatched job that
    never joins its room then costs no media objects). ``key`` names it (default: random).
    """
    url = LOCAL_URL_PREFIX + (key or uuid.uuid4().hex)
    if url in _local_rooms:
        raise ValueError(f"{url} is already registered")
    _local_rooms[url] = room if callable(room) else (lambda: room)
    return url


def unregister_local_room(url: str) -> None:
    """Forget ``url`` (a job that resolves it afterwards gets an error)."""
    _local_rooms.pop(url, None)


def open_local_room(url: str) -> Any:
    """The local room registered at ``url``; ``LookupError`` naming the cause otherwise."""
    factory = _local_rooms.get(url)
    if factory is None:
        raise LookupError(
            f"no local room at {url}: local:// URLs name rooms registered in this process "
            "(syncagents.testing.DispatchServer hands them out), so the worker must run in the "
            "process of the DispatchServer that dispatched the job"
        )
    return factory()
