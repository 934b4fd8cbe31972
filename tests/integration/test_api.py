"""``syncagents.api`` against a real livekit-server: rooms, participants, data, agent dispatch,
the server's errors, and ``JobContext.api`` / ``ctx.delete_room()`` from a real job.

The users are livekit's own asyncio SDK in other processes (``user_client.py``): what the API
changes is checked on their side, not only in the API's answers.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator

import pytest
from conftest import UserClient, WorkerProcess, room_name

from syncagents import api
from syncagents.testing.livekit_server import LiveKitServer

CALL_TIMEOUT = 20.0
DELETE_ROOM_AGENT = "tests/integration/apps/delete_room_agent.py"


@pytest.fixture
def lkapi(livekit_server: LiveKitServer) -> Iterator[api.LiveKitAPI]:
    # the ws:// URL, as agents have it: the client turns it into http://
    with api.LiveKitAPI(
        livekit_server.url, livekit_server.api_key, livekit_server.api_secret, timeout=CALL_TIMEOUT
    ) as client:
        yield client


def _no_secret(exc: BaseException, *secrets: str) -> None:
    text = f"{exc}\n{exc!r}\n{getattr(exc, 'message', '')}"
    for secret in secrets:
        assert secret not in text
    assert not re.search(r"eyJ[\w-]+\.[\w-]+\.", text), text


def _wait_active(lkapi: api.LiveKitAPI, room: str, identity: str) -> None:
    """Until the server holds ``identity`` ACTIVE (its transports up).

    livekit-server 1.13.5 drops data the API sends to a participant that is still JOINED
    (``SendDataMessage`` returns ErrDataChannelUnavailable; later versions queue it), and no
    event tells the API side when the state changes, so this polls the server's own answer.
    """
    deadline = time.monotonic() + CALL_TIMEOUT
    req = api.RoomParticipantIdentity(room=room, identity=identity)
    while True:
        state = lkapi.room.get_participant(req).state
        if state == api.ParticipantInfo.State.ACTIVE:
            return
        assert time.monotonic() < deadline, f"{identity} still in state {state}"
        time.sleep(0.05)  # polling the server; it has no event for this


def _room_names(lkapi: api.LiveKitAPI, *names: str) -> list[str]:
    return [r.name for r in lkapi.room.list_rooms(api.ListRoomsRequest(names=list(names))).rooms]


def test_create_list_delete_room(lkapi: api.LiveKitAPI) -> None:
    name = room_name("api")
    created = lkapi.room.create_room(
        api.CreateRoomRequest(name=name, empty_timeout=60, metadata="from the api")
    )
    assert (created.name, created.metadata) == (name, "from the api")
    assert created.sid.startswith("RM_")
    assert _room_names(lkapi, name) == [name]
    assert name in [r.name for r in lkapi.room.list_rooms(api.ListRoomsRequest()).rooms]

    lkapi.room.delete_room(api.DeleteRoomRequest(room=name))
    assert _room_names(lkapi, name) == []


def test_list_participants_shows_a_user(
    lkapi: api.LiveKitAPI, user_factory: Callable[..., UserClient]
) -> None:
    name = room_name("api")
    user_factory(name, "alice")
    listed = lkapi.room.list_participants(api.ListParticipantsRequest(room=name))
    assert [p.identity for p in listed.participants] == ["alice"]
    alice = lkapi.room.get_participant(api.RoomParticipantIdentity(room=name, identity="alice"))
    assert alice.identity == "alice" and alice.sid.startswith("PA_")


def test_update_participant_reaches_the_user(
    lkapi: api.LiveKitAPI, user_factory: Callable[..., UserClient]
) -> None:
    name = room_name("api")
    alice = user_factory(name, "alice")
    bob = user_factory(name, "bob")
    info = lkapi.room.update_participant(
        api.UpdateParticipantRequest(
            room=name, identity="alice", metadata="vip", attributes={"tier": "gold"}
        )
    )
    assert (info.metadata, dict(info.attributes)) == ("vip", {"tier": "gold"})
    for user in (alice, bob):  # alice about herself, bob about her
        user.wait_for(
            "metadata_changed", lambda e: e["identity"] == "alice" and e["metadata"] == "vip"
        )
        user.wait_for(
            "attributes_changed",
            lambda e: e["identity"] == "alice" and e["attributes"].get("tier") == "gold",
        )


def test_send_data_reaches_the_user(
    lkapi: api.LiveKitAPI, user_factory: Callable[..., UserClient]
) -> None:
    name = room_name("api")
    alice = user_factory(name, "alice")
    _wait_active(lkapi, name, "alice")
    payload = json.dumps({"hello": "from the server"})
    lkapi.room.send_data(
        api.SendDataRequest(
            room=name,
            data=payload.encode(),
            kind=api.DataPacket.Kind.RELIABLE,
            topic="news",
            destination_identities=["alice"],
        )
    )
    ev = alice.wait_for("data", lambda e: e["topic"] == "news")
    assert json.loads(ev["text"]) == {"hello": "from the server"}


def test_agent_dispatch(lkapi: api.LiveKitAPI) -> None:
    name = room_name("dispatch")
    lkapi.room.create_room(api.CreateRoomRequest(name=name, empty_timeout=60))
    dispatch = lkapi.agent_dispatch.create_dispatch(
        api.CreateAgentDispatchRequest(agent_name="nobody-runs-me", room=name, metadata='{"k":1}')
    )
    assert (dispatch.agent_name, dispatch.room, dispatch.metadata) == (
        "nobody-runs-me", name, '{"k":1}'
    )
    assert dispatch.id
    # (the room may also list the server's automatic dispatch for agents without a name)
    listed = lkapi.agent_dispatch.list_dispatch(room_name=name)
    assert dispatch.id in [d.id for d in listed]
    got = lkapi.agent_dispatch.get_dispatch(dispatch.id, name)
    assert got is not None and got.agent_name == "nobody-runs-me"

    deleted = lkapi.agent_dispatch.delete_dispatch(dispatch.id, name)
    assert deleted.id == dispatch.id
    assert dispatch.id not in [d.id for d in lkapi.agent_dispatch.list_dispatch(room_name=name)]
    lkapi.room.delete_room(api.DeleteRoomRequest(room=name))


def test_missing_room_is_a_twirp_error(
    lkapi: api.LiveKitAPI, livekit_server: LiveKitServer
) -> None:
    missing = room_name("missing")
    with pytest.raises(api.TwirpError) as info:
        lkapi.room.delete_room(api.DeleteRoomRequest(room=missing))
    err = info.value
    assert (err.code, err.status) == (api.TwirpErrorCode.NOT_FOUND, 404), err
    assert "room does not exist" in err.message
    _no_secret(err, livekit_server.api_secret)
    with pytest.raises(api.TwirpError) as nobody:
        lkapi.room.get_participant(api.RoomParticipantIdentity(room=missing, identity="x"))
    assert nobody.value.code == api.TwirpErrorCode.NOT_FOUND, nobody.value


def test_wrong_secret_is_unauthenticated(livekit_server: LiveKitServer) -> None:
    wrong = "wrong-" + livekit_server.api_secret[::-1]
    with (
        api.LiveKitAPI(livekit_server.url, livekit_server.api_key, wrong) as bad,
        pytest.raises(api.TwirpError) as info,
    ):
        bad.room.list_rooms(api.ListRoomsRequest(), timeout=CALL_TIMEOUT)
    err = info.value
    assert (err.code, err.status) == (api.TwirpErrorCode.UNAUTHENTICATED, 401), err
    # the server's own words, without the token it quotes
    assert err.message.startswith("invalid token: <token>"), err.message
    _no_secret(err, wrong, livekit_server.api_secret)


def test_job_api_and_delete_room(
    lkapi: api.LiveKitAPI,
    livekit_server: LiveKitServer,
    worker_factory: Callable[..., WorkerProcess],
    user_factory: Callable[..., UserClient],
) -> None:
    worker = worker_factory(DELETE_ROOM_AGENT)
    worker.wait_log("registered worker", timeout=90)
    name = room_name("bye")
    user = user_factory(name, "caller")  # a new room: the worker (no agent_name) gets the job

    assigned = worker.wait_log(f"(room {name!r})")
    job_id = assigned["message"].split()[1]
    user.wait_for("participant_connected", lambda e: e["identity"] == f"agent-{job_id}")
    # ctx.api answered from inside the job, with the worker's credentials
    listed = worker.wait_log(f"participants of {name}:")
    assert listed["message"].endswith(f": agent-{job_id},caller")

    user.send("chat", text="bye")
    # ctx.delete_room() disconnected the user and the agent, which ended the job
    user.wait_for("disconnected")
    worker.wait_log(f"deleted room {name} for caller")
    worker.wait_log(f"job {job_id} ended")
    assert _room_names(lkapi, name) == []
    log = worker.tail(100_000)
    assert livekit_server.api_secret not in log
    assert not re.search(r"eyJ[\w-]+\.[\w-]+\.", log)
