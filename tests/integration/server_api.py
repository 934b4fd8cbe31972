"""The LiveKit server API as the user's backend calls it: livekit's own asyncio ``livekit.api``
in a separate process (independent of syncagents). Prints the result as one JSON line.

    python server_api.py --url http://... --key K --secret S create_dispatch ROOM AGENT [META]
    python server_api.py ... delete_room ROOM
    python server_api.py ... list_dispatch ROOM
    python server_api.py ... list_participants ROOM
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from google.protobuf.json_format import MessageToDict
from livekit import api


async def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--secret", required=True)
    parser.add_argument("action")
    parser.add_argument("args", nargs="*")
    a = parser.parse_args()
    async with api.LiveKitAPI(a.url, a.key, a.secret) as lk:
        if a.action == "create_dispatch":
            room, agent = a.args[0], a.args[1]
            meta = a.args[2] if len(a.args) > 2 else ""
            res = await lk.agent_dispatch.create_dispatch(
                api.CreateAgentDispatchRequest(agent_name=agent, room=room, metadata=meta)
            )
        elif a.action == "delete_room":
            res = await lk.room.delete_room(api.DeleteRoomRequest(room=a.args[0]))
        elif a.action == "list_dispatch":
            res = await lk.agent_dispatch.list_dispatch(a.args[0])  # type: ignore[assignment]
            print(json.dumps([MessageToDict(d) for d in res]))  # type: ignore[attr-defined]
            return 0
        elif a.action == "list_participants":
            res = await lk.room.list_participants(api.ListParticipantsRequest(room=a.args[0]))
        else:
            print(f"unknown action {a.action}", file=sys.stderr)
            return 2
    print(json.dumps(MessageToDict(res)))
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
