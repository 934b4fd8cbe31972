"""Participants: the ``Participant`` base facade and the blocking ``LocalParticipant``.

Every call that waits for the server (publishing, metadata, RPC, streams) blocks only the
calling greenlet and takes an optional ``timeout=`` (seconds, the builtin ``TimeoutError``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import gevent

from .. import _bridge
from . import _registry, data_streams, rpc
from ._blocking import BlockingProxy, lk, mirror, unwrap
from .publication import LocalTrackPublication


class Participant:
    """What local and remote participants share: ``identity``, ``sid``, ``name``,
    ``metadata``, ``attributes``, ``kind``, ``state``, ``permissions``, ``connection_quality``,
    ... (read live from livekit), and ``track_publications`` (facades, by track sid)."""

    _lk: Any

    @property
    def identity(self) -> str:
        """The participant's identity (unique in the room)."""
        return str(self._lk.identity)

    @property
    def sid(self) -> str:
        """The participant's server id."""
        return str(self._lk.sid)

    @property
    def name(self) -> str:
        """The participant's display name."""
        return str(self._lk.name)

    @property
    def metadata(self) -> str:
        """The participant's metadata string."""
        return str(self._lk.metadata)

    @property
    def attributes(self) -> dict[str, str]:
        """The participant's attributes (a copy)."""
        return dict(self._lk.attributes)

    @property
    def kind(self) -> int:
        """``ParticipantKind`` (standard, agent, SIP, ingress, egress)."""
        return int(self._lk.kind)

    @property
    def track_publications(self) -> dict[str, Any]:
        """The participant's publications by track sid (facades, a snapshot)."""
        # dict() copies livekit's dict in one step, safe while the loop thread changes it
        publications = dict(self._lk.track_publications)
        return {sid: _registry.facade(pub) for sid, pub in publications.items()}

    kind_details = mirror("kind_details", "``ParticipantKindDetail`` values refining ``kind``.")
    state = mirror("state", "``ParticipantState`` (joining, joined, active, disconnected).")
    joined_at = mirror("joined_at", "When the participant joined (UTC datetime) or ``None``.")
    permissions = mirror("permissions", "The participant's ``ParticipantPermission``.")
    connection_quality = mirror("connection_quality", "The last reported ``ConnectionQuality``.")
    disconnect_reason = mirror(
        "disconnect_reason", "``DisconnectReason`` once disconnected, else ``None``."
    )

    def __repr__(self) -> str:
        return f"rtc.{type(self).__name__}(identity={self.identity!r}, sid={self.sid!r})"


def _check_attributes(attributes: Any) -> dict[str, str]:
    if not isinstance(attributes, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in attributes.items()
    ):
        raise TypeError(f"attributes must be a dict of str to str, got {attributes!r}")
    return attributes


def _check_identities(identities: Any) -> list[str]:
    if identities is None:
        return []
    if isinstance(identities, str) or not all(isinstance(i, str) for i in identities):
        raise TypeError(f"destination_identities must be a list of str, got {identities!r}")
    return list(identities)


class LocalParticipant(BlockingProxy, Participant):
    """The agent's own participant (``room.local_participant``), every call blocking.

    Publishing (tracks, data, transcriptions), its own metadata, RPC (handlers are plain
    functions run in greenlets) and text/byte streams. Attributes of livekit's local participant
    not wrapped here pass through; async ones become blocking with an optional ``timeout=``.
    """

    def __init__(
        self, lk_participant: Any, spawn: Callable[..., gevent.Greenlet] | None = None
    ) -> None:
        self._lk = lk_participant
        self._spawn: Callable[..., gevent.Greenlet] = spawn or gevent.spawn

    # -- tracks and data --------------------------------------------------------------------
    def publish_track(
        self, track: Any, options: Any = None, *, timeout: float | None = None
    ) -> LocalTrackPublication:
        """Publish a local track; returns its ``LocalTrackPublication``."""
        lk_track = unwrap(track)
        if not isinstance(lk_track, (lk.LocalAudioTrack, lk.LocalVideoTrack)):
            raise TypeError(
                "publish_track needs a local track (rtc.LocalAudioTrack.create_audio_track or "
                f"rtc.LocalVideoTrack.create_video_track), got {type(track).__name__}"
            )
        opts = options if options is not None else lk.TrackPublishOptions()
        publication = _bridge.run(self._lk.publish_track(lk_track, opts), timeout=timeout)
        return _registry.facade(publication)  # type: ignore[no-any-return]

    def unpublish_track(self, track_sid: str, *, timeout: float | None = None) -> None:
        """Unpublish the track with this sid."""
        _bridge.run(self._lk.unpublish_track(track_sid), timeout=timeout)

    def publish_data(
        self,
        payload: bytes | str,
        *,
        reliable: bool = True,
        destination_identities: list[str] | None = None,
        topic: str = "",
        timeout: float | None = None,
    ) -> None:
        """Send a data packet to the room (or to ``destination_identities``)."""
        _bridge.run(
            self._lk.publish_data(
                payload,
                reliable=reliable,
                destination_identities=_check_identities(destination_identities),
                topic=topic,
            ),
            timeout=timeout,
        )

    def publish_data_track(self, *, name: str, timeout: float | None = None) -> Any:
        """Publish a data track called ``name``; returns an ``rtc.LocalDataTrack``."""
        track = _bridge.run(self._lk.publish_data_track(name=name), timeout=timeout)
        return _registry.facade(track)

    def publish_transcription(self, transcription: Any, *, timeout: float | None = None) -> None:
        """Send an ``rtc.Transcription`` (the legacy transcription event)."""
        _bridge.run(self._lk.publish_transcription(transcription), timeout=timeout)

    # -- own metadata -----------------------------------------------------------------------
    def set_metadata(self, metadata: str, *, timeout: float | None = None) -> None:
        """Replace this participant's metadata (needs ``canUpdateOwnMetadata``)."""
        if not isinstance(metadata, str):
            raise TypeError(f"metadata must be a str, got {type(metadata).__name__}")
        _bridge.run(self._lk.set_metadata(metadata), timeout=timeout)

    def set_attributes(self, attributes: dict[str, str], *, timeout: float | None = None) -> None:
        """Set (merge) attributes of this participant (an empty value deletes a key)."""
        checked = _check_attributes(attributes)
        _bridge.run(self._lk.set_attributes(checked), timeout=timeout)

    def set_name(self, name: str, *, timeout: float | None = None) -> None:
        """Change this participant's display name."""
        if not isinstance(name, str):
            raise TypeError(f"name must be a str, got {type(name).__name__}")
        _bridge.run(self._lk.set_name(name), timeout=timeout)

    # -- RPC --------------------------------------------------------------------------------
    def register_rpc_method(self, method_name: str, handler: Any = None) -> Any:
        """Handle calls of ``method_name`` with a plain function
        ``(data: rtc.RpcInvocationData) -> str``, run in its own greenlet (owned like room
        event handlers). Raise ``rtc.RpcError`` to fail the call with your code and message;
        any other exception fails it with livekit's "Application error". Usable as a decorator
        (``@local_participant.register_rpc_method("name")``); replaces an earlier handler."""

        def register(fn: Any) -> Any:
            rpc.check_handler(method_name, fn)
            invoke = rpc.invoker(method_name, fn, self._spawn)
            _bridge.call(self._lk.register_rpc_method, method_name, invoke)
            return fn

        if handler is not None:
            return register(handler)
        rpc.check_method_name(method_name)  # at decoration time, not at first call
        return register

    def unregister_rpc_method(self, method: str) -> None:
        """Stop handling ``method`` (callers then get "Method not supported")."""
        _bridge.call(self._lk.unregister_rpc_method, method)

    def perform_rpc(
        self,
        *,
        destination_identity: str,
        method: str,
        payload: str,
        response_timeout: float | None = None,
        max_round_trip_latency: float | None = None,
        timeout: float | None = None,
    ) -> str:
        """Call ``method`` on ``destination_identity`` and return its response payload.

        Raises ``rtc.RpcError`` as livekit does (the remote handler's error, "Method not
        supported", "Response timeout" after ``response_timeout`` s, ...).
        """
        if not isinstance(payload, str):
            raise TypeError(f"an RPC payload must be a str, got {type(payload).__name__}")
        return str(
            _bridge.run(
                self._lk.perform_rpc(
                    destination_identity=destination_identity,
                    method=method,
                    payload=payload,
                    response_timeout=response_timeout,
                    max_round_trip_latency=max_round_trip_latency,
                ),
                timeout=timeout,
            )
        )

    # -- text and byte streams --------------------------------------------------------------
    def send_text(
        self,
        text: str,
        *,
        topic: str = "",
        destination_identities: list[str] | None = None,
        attributes: dict[str, str] | None = None,
        reply_to_id: str | None = None,
        timeout: float | None = None,
    ) -> Any:
        """Send ``text`` as one text stream on ``topic``; returns its ``TextStreamInfo``."""
        if not isinstance(text, str):
            raise TypeError(f"send_text takes a str, got {type(text).__name__}")
        return _bridge.run(
            self._lk.send_text(
                text,
                topic=topic,
                destination_identities=_check_identities(destination_identities),
                attributes=_check_attributes(attributes or {}),
                reply_to_id=reply_to_id,
            ),
            timeout=timeout,
        )

    def stream_text(
        self,
        *,
        topic: str = "",
        destination_identities: list[str] | None = None,
        attributes: dict[str, str] | None = None,
        stream_id: str | None = None,
        reply_to_id: str | None = None,
        total_size: int | None = None,
        sender_identity: str | None = None,
        timeout: float | None = None,
    ) -> data_streams.TextStreamWriter:
        """Open a text stream on ``topic``: a writer with blocking ``write(str)`` and
        ``close()``, also a context manager."""
        lk_writer = _bridge.run(
            self._lk.stream_text(
                topic=topic,
                destination_identities=_check_identities(destination_identities),
                attributes=_check_attributes(attributes or {}),
                stream_id=stream_id,
                reply_to_id=reply_to_id,
                total_size=total_size,
                sender_identity=sender_identity,
            ),
            timeout=timeout,
        )
        return data_streams.TextStreamWriter(lk_writer)

    def send_file(
        self,
        file_path: str | os.PathLike[str],
        *,
        topic: str = "",
        destination_identities: list[str] | None = None,
        attributes: dict[str, str] | None = None,
        stream_id: str | None = None,
        timeout: float | None = None,
    ) -> Any:
        """Send a file as one byte stream (named after the file, mime type guessed);
        returns its ``ByteStreamInfo``."""
        path = os.fspath(file_path)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"send_file: no such file: {path}")
        return _bridge.run(
            self._lk.send_file(
                path,
                topic=topic,
                destination_identities=_check_identities(destination_identities),
                attributes=_check_attributes(attributes or {}),
                stream_id=stream_id,
            ),
            timeout=timeout,
        )

    def send_bytes(
        self,
        data: bytes | bytearray | memoryview,
        *,
        topic: str = "",
        name: str | None = None,
        mime_type: str | None = None,
        destination_identities: list[str] | None = None,
        attributes: dict[str, str] | None = None,
        stream_id: str | None = None,
        timeout: float | None = None,
    ) -> Any:
        """Send ``data`` as one byte stream; returns its ``ByteStreamInfo``."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(
                f"send_bytes takes bytes, got {type(data).__name__} (send_text sends a str)"
            )
        return _bridge.run(
            self._lk.send_bytes(
                bytes(data),
                topic=topic,
                name=name,
                mime_type=mime_type,
                destination_identities=_check_identities(destination_identities),
                attributes=_check_attributes(attributes or {}),
                stream_id=stream_id,
            ),
            timeout=timeout,
        )

    def stream_bytes(
        self,
        name: str,
        *,
        topic: str = "",
        total_size: int | None = None,
        mime_type: str = "application/octet-stream",
        destination_identities: list[str] | None = None,
        attributes: dict[str, str] | None = None,
        stream_id: str | None = None,
        timeout: float | None = None,
    ) -> data_streams.ByteStreamWriter:
        """Open a byte stream called ``name`` on ``topic``: a writer with blocking
        ``write(bytes)`` and ``close()``, also a context manager."""
        lk_writer = _bridge.run(
            self._lk.stream_bytes(
                name,
                topic=topic,
                total_size=total_size,
                mime_type=mime_type,
                destination_identities=_check_identities(destination_identities),
                attributes=_check_attributes(attributes or {}),
                stream_id=stream_id,
            ),
            timeout=timeout,
        )
        return data_streams.ByteStreamWriter(lk_writer)

    def __repr__(self) -> str:
        return f"LocalParticipant(identity={self.identity!r})"
