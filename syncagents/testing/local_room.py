"""``LocalRoom``: an in-process room for running an agent with no LiveKit server.

It has the surface of :class:`syncagents.rtc.Room` that entrypoints and the VoiceAssistant
use (connect, participants, events, the local participant's publish calls), and real media:
the remote participant ``user`` publishes a real ``LocalAudioTrack`` fed by an
``rtc.AudioSource`` (48 kHz mono, like a WebRTC microphone), so the agent reads it with a
plain ``rtc.AudioStream``; tracks the agent publishes can be read the same way. The console
runs agents here; tests use it to drive an agent end to end.

``local://`` URLs name local rooms of this process: :func:`register_local_room` hands one out,
and a ``JobContext`` whose URL is one joins that room instead of a LiveKit server
(:func:`open_local_room`). That is how a job dispatched by ``DispatchServer`` runs a whole
agent with no server: the double puts such a URL in the job's assignment.
"""

from __future__ import annotations

import itertools
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import gevent
import gevent.event
import gevent.pool
from loguru import logger

from .. import rtc
from ..room_events import RoomEvents
from ..voice_assistant.watch import watch_assistants
from ._local_urls import (
    LOCAL_URL_PREFIX,
    open_local_room,
    register_local_room,
    unregister_local_room,
)

__all__ = [
    "CHAT_TOPIC",
    "LOCAL_URL_PREFIX",
    "USER_RATE",
    "LocalAgentParticipant",
    "LocalPublication",
    "LocalRemoteParticipant",
    "LocalRoom",
    "open_local_room",
    "register_local_room",
    "unregister_local_room",
]

USER_RATE = 48000
CHAT_TOPIC = "lk-chat-topic"  # the topic livekit's chat components use

_ids = itertools.count(1)


def _sid(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


@dataclass
class LocalPublication:
    """A track publication, with the attributes of livekit's ``TrackPublication``."""

    track: Any
    name: str
    kind: int = rtc.TrackKind.KIND_AUDIO
    source: int = rtc.TrackSource.SOURCE_MICROPHONE
    sid: str = field(default_factory=lambda: _sid("TR"))
    muted: bool = False
    subscribed: bool = True
    mime_type: str = "audio/opus"

    def set_subscribed(self, subscribed: bool) -> None:
        """Record the subscription (media flows locally either way)."""
        self.subscribed = subscribed


@dataclass
class LocalRemoteParticipant:
    """The other side of the local room (``user`` by default)."""

    identity: str
    name: str = ""
    sid: str = field(default_factory=lambda: _sid("PA"))
    metadata: str = ""
    attributes: dict[str, str] = field(default_factory=dict)
    kind: int = rtc.ParticipantKind.PARTICIPANT_KIND_STANDARD
    track_publications: dict[str, LocalPublication] = field(default_factory=dict)


class LocalAgentParticipant:
    """The agent's own participant in a :class:`LocalRoom` (blocking like the facade's)."""

    def __init__(self, room: LocalRoom, identity: str) -> None:
        self._room = room
        self.identity = identity
        self.name = identity
        self.sid = _sid("PA")
        self.metadata = ""
        self.attributes: dict[str, str] = {}
        self.kind = rtc.ParticipantKind.PARTICIPANT_KIND_AGENT
        self.track_publications: dict[str, LocalPublication] = {}

    def publish_track(
        self, track: Any, options: Any = None, *, timeout: float | None = None
    ) -> LocalPublication:
        """Publish ``track``; the user subscribes to it at once (``track_listeners`` see it)."""
        source = getattr(options, "source", 0) or rtc.TrackSource.SOURCE_MICROPHONE
        pub = LocalPublication(track=track, name=getattr(track, "name", ""), source=source)
        self.track_publications[pub.sid] = pub
        self._room._emit("local_track_published", pub, track)
        if self._room.user.identity in self._room.remote_participants:
            self._room._emit("local_track_subscribed", track)  # the user subscribes to all
        for listener in list(self._room.track_listeners):
            listener(pub)
        return pub

    def unpublish_track(self, track_sid: str, *, timeout: float | None = None) -> None:
        """Unpublish the track ``track_sid``."""
        pub = self.track_publications.pop(track_sid, None)
        if pub is not None:
            self._room._emit("local_track_unpublished", pub)

    def publish_data(
        self,
        payload: bytes | str,
        *,
        reliable: bool = True,
        destination_identities: list[str] | None = None,
        topic: str = "",
        timeout: float | None = None,
    ) -> None:
        """Send data: kept in the room's ``data_sent`` as ``(topic, bytes)``."""
        data = payload.encode() if isinstance(payload, str) else bytes(payload)
        self._room.data_sent.append((topic, data))

    def publish_transcription(self, transcription: Any, *, timeout: float | None = None) -> None:
        """Hand ``transcription`` to the room's ``transcription_listeners``."""
        for listener in list(self._room.transcription_listeners):
            listener(transcription)

    def set_metadata(self, metadata: str, *, timeout: float | None = None) -> None:
        """Set the agent's metadata."""
        self.metadata = metadata

    def set_attributes(self, attributes: dict[str, str], *, timeout: float | None = None) -> None:
        """Add or change the agent's attributes."""
        self.attributes.update(attributes)

    def __repr__(self) -> str:
        return f"LocalAgentParticipant(identity={self.identity!r})"


class LocalRoom(RoomEvents):
    """A room with the agent and one remote participant, all in this process.

    ``user_source`` is the user's microphone: capture 48 kHz mono frames into it (the console
    plays a WAV file or a microphone there). ``send_chat(text)`` delivers a chat message
    (``data_received`` on the chat topic). ``transcription_listeners`` and
    ``track_listeners`` see what the agent publishes, ``assistant_listeners`` every
    ``VoiceAssistant`` started in the room (also kept in ``assistants``); ``joined`` is set
    once the agent connected. ``token_check(token)``, when given, vets the token ``connect``
    gets (raise to refuse it, as a server would).
    """

    def __init__(
        self,
        name: str = "console",
        *,
        user_identity: str = "user",
        agent_identity: str = "agent",
        user_queue_ms: int = 100,
        agent_name: str = "",
        agent_metadata: str = "",
        agent_attributes: dict[str, str] | None = None,
        token_check: Callable[[str], None] | None = None,
    ) -> None:
        self.name = name
        self.sid = _sid("RM")
        self.metadata = ""
        super().__init__()
        self._connected = False
        self.user = LocalRemoteParticipant(identity=user_identity, name=user_identity)
        self.user_source = rtc.AudioSource(USER_RATE, 1, queue_size_ms=user_queue_ms)
        self.user_track = rtc.LocalAudioTrack.create_audio_track("microphone", self.user_source)
        self.user_publication = LocalPublication(track=self.user_track, name="microphone")
        self._local = LocalAgentParticipant(self, agent_identity)
        self._local.name = agent_name or agent_identity
        self._local.metadata = agent_metadata
        self._local.attributes = dict(agent_attributes or {})
        self._token_check = token_check
        self._remote: dict[str, LocalRemoteParticipant] = {}
        self.transcription_listeners: list[Callable[[Any], None]] = []
        self.track_listeners: list[Callable[[LocalPublication], None]] = []
        self.assistant_listeners: list[Callable[[Any], None]] = []
        self.assistants: list[Any] = []
        watch_assistants(self, self._on_assistant_started)
        self.data_sent: list[tuple[str, bytes]] = []
        self.connected_at: float | None = None
        self.joined = gevent.event.Event()  # set once the agent has connected

    # -- the facade surface -------------------------------------------------------------------
    def connect(
        self, url: str = "", token: str = "", options: Any = None, timeout: float | None = 10
    ) -> None:
        """Join; the user joins right after and publishes its microphone track."""
        if self._connected:
            return
        if self._token_check is not None:
            self._token_check(token)
        self._connected = True
        self.connected_at = time.monotonic()
        self.joined.set()
        self._emit("connection_state_changed", rtc.ConnectionState.CONN_CONNECTED)
        self._emit("connected")
        self._user_joins()

    def disconnect(self, timeout: float | None = 10) -> None:
        """Leave: ``disconnected`` for the agent's handlers."""
        if not self._connected:
            return
        self._connected = False
        self._emit("connection_state_changed", rtc.ConnectionState.CONN_DISCONNECTED)
        self._emit("disconnected", rtc.DisconnectReason.CLIENT_INITIATED)

    def isconnected(self) -> bool:
        """The agent is in the room."""
        return self._connected

    @property
    def connection_state(self) -> int:
        """``rtc.ConnectionState`` as an int."""
        if self._connected:
            return int(rtc.ConnectionState.CONN_CONNECTED)
        return int(rtc.ConnectionState.CONN_DISCONNECTED)

    @property
    def local_participant(self) -> LocalAgentParticipant:
        """The agent (after :meth:`connect`)."""
        if not self._connected:
            raise RuntimeError("cannot access local participant before connecting")
        return self._local

    @property
    def remote_participants(self) -> dict[str, LocalRemoteParticipant]:
        """Identity → participant: the user, while in the room."""
        return dict(self._remote)

    # -- the user's side ----------------------------------------------------------------------
    def _user_joins(self) -> None:
        user = self.user
        self._remote[user.identity] = user
        self._emit("participant_connected", user)
        pub = self.user_publication
        user.track_publications[pub.sid] = pub
        self._emit("track_published", pub, user)
        self._emit("track_subscribed", self.user_track, pub, user)
        if self._local is not None:  # the user subscribes to what the agent already published
            for local_pub in list(self._local.track_publications.values()):
                self._emit("local_track_subscribed", local_pub.track)

    def user_leaves(self) -> None:
        """The user hangs up: ``participant_disconnected`` (a ROOM_EMPTY job then ends)."""
        user = self._remote.pop(self.user.identity, None)
        if user is not None:
            for pub in list(user.track_publications.values()):
                self._emit("track_unsubscribed", pub.track, pub, user)
            self._emit("participant_disconnected", user)

    def send_chat(self, text: str) -> None:
        """The user sends a chat message (livekit's chat format on the chat topic)."""
        payload = json.dumps(
            {"id": f"msg-{next(_ids)}", "message": text, "timestamp": int(time.time() * 1000)}
        ).encode()
        packet = rtc.DataPacket(
            data=payload,
            kind=rtc.DataPacketKind.KIND_RELIABLE,
            participant=self.user,  # type: ignore[arg-type]
            topic=CHAT_TOPIC,
        )
        self._emit("data_received", packet)

    def _on_assistant_started(self, assistant: Any) -> None:
        # the console follows the assistant's turns and speeches through these
        self.assistants.append(assistant)
        for listener in list(self.assistant_listeners):
            listener(assistant)

    @property
    def agent_publications(self) -> list[LocalPublication]:
        """The tracks the agent has published (also before a listener was added)."""
        return list(self._local.track_publications.values())

    def close(self) -> None:
        """Disconnect and release the user's media objects."""
        self.disconnect()
        self._stop_handlers()
        try:
            self.user_source.close()
        except Exception as exc:
            logger.debug("closing the local user source: {}", exc)

    def __repr__(self) -> str:
        return f"LocalRoom(name={self.name!r}, connected={self._connected})"
