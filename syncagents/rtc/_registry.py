"""One facade object per livekit object.

Room events, ``remote_participants``, ``track_publications`` and ``publication.track`` all hand
out livekit's participants, publications and tracks; the facade hands out a blocking wrapper
for each instead. Users compare them (``pub.track is track``, a stored participant against an
event's) and keep state next to them, so the same livekit object must always give the same
facade: the registry maps ``id(livekit object)`` to its facade, held weakly. A facade holds its
livekit object, so an id cannot be reused while its entry is alive; once nobody holds the
facade it goes, and a later lookup makes a new one (nobody can tell the difference).

Only the hub touches the registry (conversions happen in greenlets, never on the loop thread).
"""

from __future__ import annotations

import dataclasses
import weakref
from collections.abc import Callable
from typing import Any

from .. import _bridge

lk = _bridge.livekit_rtc()

_factories: dict[type, Callable[[Any], Any]] = {}
_facades: weakref.WeakValueDictionary[int, Any] = weakref.WeakValueDictionary()


def register_type(lk_type: type, factory: Callable[[Any], Any]) -> None:
    """Facades of ``lk_type`` objects (exactly that type) are made by ``factory(lk_obj)``."""
    _factories[lk_type] = factory


def adopt(lk_obj: Any, facade_obj: Any) -> None:
    """Make ``facade_obj`` the facade of ``lk_obj`` (objects the facade created itself, e.g. a
    track from ``create_audio_track``, or the room's local participant)."""
    _facades[id(lk_obj)] = facade_obj


def facade(obj: Any) -> Any:
    """The facade of a livekit participant, publication or track; anything else unchanged."""
    if obj is None:
        return None
    found = _facades.get(id(obj))
    if found is not None and getattr(found, "_lk", None) is obj:
        return found
    factory = _factories.get(type(obj))
    if factory is None:
        return obj
    made = factory(obj)
    _facades[id(obj)] = made
    return made


def convert(value: Any) -> Any:
    """An event argument as handlers get it: livekit objects become facades, also inside the
    lists (``active_speakers_changed``) and packets (``data_received``, ``sip_dtmf_received``)
    that livekit passes."""
    if isinstance(value, list):
        return [convert(v) for v in value]
    if isinstance(value, (lk.DataPacket, lk.SipDTMF)) and value.participant is not None:
        return dataclasses.replace(value, participant=facade(value.participant))
    return facade(value)
