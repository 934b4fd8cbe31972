"""Publishing transcriptions of both sides to the room, in order, off the audio path.

``publish_transcription`` blocks (a round trip to the room), so it runs in one publisher
greenlet fed by a queue: updates of a segment reach the room in the order they were made and
neither playout nor the STT loop ever waits for the network.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gevent
import gevent.event
from loguru import logger

from .. import rtc
from ..channel import Chan

__all__ = ["TranscriptionPublisher", "new_segment_id"]


def new_segment_id() -> str:
    """A fresh transcription segment id: ``SG_`` and 12 random hex digits."""
    return "SG_" + uuid.uuid4().hex[:12]


@dataclass
class _Update:
    identity: str | None  # None: the agent (resolved when sent: the room may connect later)
    track_sid: str | Callable[[], str]
    segment_id: str
    text: str
    final: bool
    language: str
    start_ms: int
    end_ms: int


# How long the first transcription waits for a remote participant to subscribe to the agent's
# track (see TranscriptionPublisher); an agent that publishes no track sends after this.
FIRST_SUBSCRIBER_TIMEOUT = 5.0
TRANSCRIPTION_TOPIC = "lk.transcription"  # livekit 1.x clients read transcriptions here


class TranscriptionPublisher:
    """Publishes segment updates both ways livekit clients read them: the legacy transcription
    event (every update) and, for final segments, a text stream on ``lk.transcription`` sent
    on behalf of the transcribed participant, with the ``lk.segment_id``,
    ``lk.transcribed_track_id`` and ``lk.transcription_final`` attributes of livekit-agents."""

    def __init__(self, room: Any, spawn: Callable[..., gevent.Greenlet]) -> None:
        self._room = room
        self._updates: Chan[_Update] = Chan()  # unbounded: publishing never blocks the caller
        self._warned = False
        # Nothing is sent before someone subscribed to the agent's track: data that reaches a
        # client before the server told it the agent joined crashes livekit's Rust SDK
        # (livekit 1.2.1: a panic on a data stream from an unknown participant), and an agent
        # that speaks at once would otherwise send its first transcription in that window.
        self._subscribed = gevent.event.Event()
        room.on("local_track_subscribed", self._on_local_track_subscribed)
        spawn(self._run)

    def _on_local_track_subscribed(self, *args: Any) -> None:
        self._subscribed.set()

    def publish(
        self,
        *,
        identity: str | None,
        track_sid: str | Callable[[], str],
        segment_id: str,
        text: str,
        final: bool,
        language: str = "",
        start: float = 0.0,
        end: float = 0.0,
    ) -> None:
        """Queue one segment update (``identity=None`` for the agent itself)."""
        if self._updates.closed:
            return
        self._updates.send_nowait(
            _Update(identity, track_sid, segment_id, text, final, language,
                    max(0, round(start * 1000)), max(0, round(end * 1000)))
        )

    def close(self) -> None:
        """Accept no more updates; those already queued are still sent.

        Later ``publish()`` calls are ignored. The publisher greenlet ends once the queue is empty.
        """
        self._updates.close()

    def _run(self) -> None:
        first = True
        for update in self._updates:
            if first:
                first = False
                self._subscribed.wait(FIRST_SUBSCRIBER_TIMEOUT)
            try:
                self._send(update)
            except Exception as exc:
                # transcriptions are a courtesy to the room's UI: never fatal, warned once
                log = logger.debug if self._warned else logger.warning
                self._warned = True
                log("could not publish a transcription: {}", exc)

    def _send(self, u: _Update) -> None:
        local = self._room.local_participant
        identity = u.identity if u.identity is not None else str(local.identity)
        track_sid = u.track_sid() if callable(u.track_sid) else u.track_sid
        segment = rtc.TranscriptionSegment(
            id=u.segment_id,
            text=u.text,
            start_time=u.start_ms,
            end_time=u.end_ms,
            language=u.language,
            final=u.final,
        )
        local.publish_transcription(
            rtc.Transcription(participant_identity=identity, track_sid=track_sid,
                              segments=[segment])
        )
        if u.final and u.text and hasattr(local, "stream_text"):
            writer = local.stream_text(
                topic=TRANSCRIPTION_TOPIC,
                sender_identity=identity,
                attributes={
                    "lk.segment_id": u.segment_id,
                    "lk.transcribed_track_id": track_sid,
                    "lk.transcription_final": "true",
                },
            )
            writer.write(u.text)
            writer.close()
