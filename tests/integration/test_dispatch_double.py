"""The test double against the real thing: the same scripted worker session is run against
livekit-server and against ``syncagents.testing.DispatchServer``, and every message the two send
back is compared field by field (which fields are set, and their values where they are not
ids or clocks). A difference here means tests built on the double test a protocol that the real
server does not speak."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest
import websocket
from livekit.protocol import agent as proto
from livekit.protocol import models

from syncagents._ws import agent_url, mint_worker_token
from syncagents.testing import DispatchServer
from syncagents.testing.livekit_server import LiveKitServer

VOLATILE = ("worker_id", "job.id", "started_at", "updated_at", "node_id", "token", "timestamp",
            "server_info.version")


def _fields(msg: Any, prefix: str = "") -> dict[str, Any]:
    """Every set field of a protobuf message, flattened to dotted paths."""
    out: dict[str, Any] = {}
    for fd, val in msg.ListFields():
        name = prefix + fd.name
        if fd.message_type is not None and fd.message_type.GetOptions().map_entry:
            out[name] = dict(val)
        elif fd.message_type is not None and not fd.is_repeated:
            out.update(_fields(val, name + "."))
        else:
            out[name] = list(val) if fd.is_repeated else val
    return out


def _comparable(fields: dict[str, Any]) -> dict[str, Any]:
    return {k: ("<set>" if any(k.endswith(v) for v in VOLATILE) else val)
            for k, val in fields.items()}


def _claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    for clock in ("exp", "nbf", "iat"):
        if clock in claims:
            claims[clock] = "<set>"
    claims["iss"] = "<key>"
    return dict(claims)


def _session(url: str, key: str, secret: str) -> dict[str, Any]:
    """Register, simulate a job, take it, report it running then done, ping."""
    ws = websocket.create_connection(
        agent_url(url), header=[f"Authorization: Bearer {mint_worker_token(key, secret)}"],
        timeout=15,
    )

    def send(**kwargs: Any) -> None:
        ws.send_binary(proto.WorkerMessage(**kwargs).SerializeToString())

    def recv(kind: str) -> proto.ServerMessage:
        while True:
            msg = proto.ServerMessage()
            msg.ParseFromString(ws.recv())
            if msg.WhichOneof("message") == kind:
                return msg

    try:
        perms = models.ParticipantPermission(can_publish=True, can_subscribe=True,
                                             can_publish_data=True)
        send(register=proto.RegisterWorkerRequest(type=proto.JT_ROOM, agent_name="probe",
                                                  version="1.0", allowed_permissions=perms))
        out: dict[str, Any] = {"register": _fields(recv("register"))}
        send(update_worker=proto.UpdateWorkerStatus(status=proto.WS_AVAILABLE, load=0.1))
        simulate = proto.SimulateJobRequest(type=proto.JT_ROOM)
        simulate.room.name = "probe-room"
        send(simulate_job=simulate)
        offer = recv("availability")
        out["availability"] = _fields(offer)
        job_id = offer.availability.job.id
        send(availability=proto.AvailabilityResponse(
            job_id=job_id, available=True, participant_identity="probe-agent",
            participant_name="Probe", participant_metadata="m",
            participant_attributes={"a": "1"},
        ))
        assignment = recv("assignment")
        out["assignment"] = _fields(assignment)
        out["claims"] = _claims(assignment.assignment.token)
        send(update_job=proto.UpdateJobStatus(job_id=job_id, status=proto.JS_RUNNING))
        send(update_job=proto.UpdateJobStatus(job_id=job_id, status=proto.JS_SUCCESS))
        send(ping=proto.WorkerPing(timestamp=123))
        out["pong"] = _fields(recv("pong"))
        return out
    finally:
        ws.close()


@pytest.fixture(scope="module")
def sessions(livekit_server: LiveKitServer) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    real = _session(livekit_server.url, livekit_server.api_key, livekit_server.api_secret)
    with DispatchServer(local_rooms=False) as double:  # what livekit-server sends, exactly
        fake = _session(double.url, double.api_key, double.api_secret)
    yield real, fake


@pytest.mark.parametrize("message", ["register", "availability", "assignment", "pong"])
def test_the_double_sends_what_the_real_server_sends(
    sessions: tuple[dict[str, Any], dict[str, Any]], message: str
) -> None:
    real, fake = sessions
    assert _comparable(fake[message]) == _comparable(real[message])


def test_the_double_mints_the_job_token_the_real_server_mints(
    sessions: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    real, fake = sessions
    assert fake["claims"] == real["claims"]
