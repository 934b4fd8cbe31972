"""An agent that ends the call for everyone: once a user is in the room it lists the room's
participants through ``ctx.api``; when the user sends a chat message it deletes the room with
``ctx.delete_room()``.

Run by ``tests/integration/test_api.py`` as ``syncagents run`` against a real server; the
test reads the log lines below.
"""

from __future__ import annotations

import gevent.event
from loguru import logger

from syncagents import JobContext, api, rtc

CHAT_TOPIC = "lk-chat-topic"


def entrypoint(ctx: JobContext) -> None:
    bye = gevent.event.Event()

    @ctx.room.on("data_received")
    def _on_data(packet: rtc.DataPacket) -> None:
        if packet.topic == CHAT_TOPIC:
            bye.set()

    ctx.connect()
    user = ctx.wait_for_participant(timeout=30)
    listed = ctx.api.room.list_participants(api.ListParticipantsRequest(room=ctx.room.name))
    identities = sorted(p.identity for p in listed.participants)
    logger.info("participants of {}: {}", ctx.room.name, ",".join(identities))
    if not bye.wait(60):
        raise TimeoutError(f"no chat message from {user.identity} within 60 s")
    ctx.delete_room(timeout=10)
    logger.info("deleted room {} for {}", ctx.room.name, user.identity)
