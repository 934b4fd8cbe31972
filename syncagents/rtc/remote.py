"""Remote participants: the facade over livekit's ``RemoteParticipant``.

Room events and ``room.remote_participants`` hand these out, the same object for the same
participant for as long as anyone holds it.
"""

from __future__ import annotations

from typing import Any

from . import _registry
from ._blocking import lk
from .participant import Participant


class RemoteParticipant(Participant):
    """Another participant of the room: ``identity``, ``sid``, ``name``, ``metadata``,
    ``attributes``, ``kind``, ... (always current), and ``track_publications`` (facade
    ``RemoteTrackPublication`` objects by track sid; ``set_subscribed`` on them)."""

    def __init__(self, lk_participant: Any) -> None:
        self._lk = lk_participant


_registry.register_type(lk.RemoteParticipant, RemoteParticipant)
