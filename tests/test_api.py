"""``syncagents.api`` without a LiveKit server: URLs, credentials, the blocking surface, and
errors that never carry the secret or a token.

Calls that need an HTTP peer go to a small Twirp double (gevent's WSGI server in this process)
that answers what each test tells it to.
"""

from __future__ import annotations

import inspect
import json
import secrets
import subprocess
import sys
import traceback
from collections.abc import Callable, Iterator
from typing import Any

import gevent
import gevent.event
import pytest
from gevent.pywsgi import WSGIServer
from livekit import api as lk_api
from livekit.protocol import models, room
from ports import free_port

from syncagents import api
from syncagents.api import client as api_client
from syncagents.api.services import SERVICES
from syncagents.job import JobContext, make_job, run_job

SECRET = "s3cret-" + secrets.token_hex(20)  # a 47-character secret, as servers want ≥ 32
KEY = "APIunit"

Handler = Callable[[str, dict[str, str], bytes], tuple[int, bytes]]


class TwirpDouble:
    """Answers ``POST /twirp/livekit.<Service>/<Method>`` with ``handler(path, headers, body)``
    and records each request."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        self.handler: Handler = lambda path, headers, body: (404, b"")
        self.release = gevent.event.Event()  # for handlers that hang until the test is done
        self._server = WSGIServer(("127.0.0.1", 0), self._app, log=None, error_log=None)
        self._server.start()
        self.port: int = self._server.server_port

    def _app(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length)
        headers = {
            k[5:].replace("_", "-").lower(): v for k, v in environ.items() if k.startswith("HTTP_")
        }
        path = environ["PATH_INFO"]
        self.requests.append((path, headers, body))
        status, payload = self.handler(path, headers, body)
        kind = "application/protobuf" if status == 200 else "application/json"
        start_response(f"{status} X", [("Content-Type", kind)])
        return [payload]

    def close(self) -> None:
        self.release.set()
        self._server.stop(timeout=1)


@pytest.fixture
def twirp() -> Iterator[TwirpDouble]:
    server = TwirpDouble()
    yield server
    server.close()


def error_text(exc: BaseException) -> str:
    """Everything a log line or a traceback could show of ``exc`` (its chain included)."""
    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)) + repr(exc)


def assert_clean(exc: BaseException) -> None:
    text = error_text(exc)
    assert SECRET not in text
    assert "eyJ" not in text, f"a JWT in the error: {text}"


# -- configuration ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("ws://127.0.0.1:7880", "http://127.0.0.1:7880"),
        ("wss://example.livekit.cloud/", "https://example.livekit.cloud"),
        ("WSS://Example.com:443/base/", "https://Example.com:443/base"),
        ("http://localhost:7880", "http://localhost:7880"),
        ("https://lk.example.com/proxy?x=1#f", "https://lk.example.com/proxy"),
    ],
)
def test_url_becomes_http(given: str, expected: str) -> None:
    assert api.http_url(given) == expected
    assert api.LiveKitAPI(given, KEY, SECRET).url == expected


@pytest.mark.parametrize("bad", ["ftp://host", "localhost:7880", "ws://", "   "])
def test_bad_url_is_one_clear_error(bad: str) -> None:
    with pytest.raises(ValueError, match="URL"):
        api.LiveKitAPI(bad, KEY, SECRET)


def test_missing_credentials_name_the_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("LIVEKIT_URL", "LIVEKIT_API_KEY", "LIVEKIT_API_SECRET"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(ValueError, match="LIVEKIT_URL"):
        api.LiveKitAPI()
    with pytest.raises(ValueError) as both:
        api.LiveKitAPI("ws://127.0.0.1:7880")
    assert "LIVEKIT_API_KEY" in str(both.value) and "LIVEKIT_API_SECRET" in str(both.value)
    with pytest.raises(ValueError) as secret_only:
        api.LiveKitAPI("ws://127.0.0.1:7880", api_key=KEY)
    assert "LIVEKIT_API_SECRET" in str(secret_only.value)
    assert "LIVEKIT_API_KEY" not in str(secret_only.value)

    monkeypatch.setenv("LIVEKIT_URL", "wss://env.example.com")
    monkeypatch.setenv("LIVEKIT_API_KEY", KEY)
    monkeypatch.setenv("LIVEKIT_API_SECRET", SECRET)
    from_env = api.LiveKitAPI()
    assert (from_env.url, from_env.api_key) == ("https://env.example.com", KEY)
    assert SECRET not in repr(from_env)


@pytest.mark.parametrize("bad", [0, -1, "10"])
def test_bad_timeout(bad: Any) -> None:
    with pytest.raises(ValueError, match="timeout"):
        api.LiveKitAPI("ws://127.0.0.1:7880", KEY, SECRET, timeout=bad)


def test_import_is_cheap() -> None:
    code = (
        "import sys, syncagents.api\n"
        "from syncagents import _bridge\n"
        "print('livekit.api' in sys.modules, 'aiohttp' in sys.modules, _bridge.running())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.split() == ["False", "False", "False"]


# -- the blocking surface -----------------------------------------------------------------------

SERVICE_ATTRS = ["room", "agent_dispatch", "sip", "egress", "ingress", "connector"]


def test_same_methods_as_livekit_api() -> None:
    lk = api.LiveKitAPI("ws://127.0.0.1:7880", KEY, SECRET)
    assert set(SERVICES) == set(SERVICE_ATTRS)
    for attr, (module, cls) in SERVICES.items():
        lk_cls = getattr(getattr(lk_api, module), cls)
        expected = {
            n for n, _ in inspect.getmembers(lk_cls, inspect.iscoroutinefunction)
            if not n.startswith("_")
        }
        ours = {n for n in dir(getattr(lk, attr)) if not n.startswith("_")}
        assert expected and ours == expected, attr
    sig = inspect.signature(lk.room.list_participants)
    assert list(sig.parameters) == ["list", "timeout"]
    # SIP dialing keeps livekit's own timeout parameter (it sizes the request with it)
    assert list(inspect.signature(lk.sip.create_sip_participant).parameters)[:2] == [
        "create", "timeout"
    ]
    assert "participants" in (lk.room.list_participants.__doc__ or "")


def _walk(obj: Any, seen: set[int], path: str, depth: int = 0) -> Iterator[tuple[str, Any]]:
    if id(obj) in seen or depth > 4:
        return
    seen.add(id(obj))
    for name in dir(obj):
        if name.startswith("__"):
            continue
        try:
            value = getattr(obj, name)
        except Exception:
            continue
        yield f"{path}.{name}", value
        if not isinstance(value, (str, bytes, int, float, bool, type(None), type)) and (
            type(value).__module__ or ""
        ).startswith(("syncagents", "livekit")):
            yield from _walk(value, seen, f"{path}.{name}", depth + 1)


def test_no_coroutine_function_reachable(twirp: TwirpDouble) -> None:
    twirp.handler = lambda path, headers, body: (200, room.ListRoomsResponse().SerializeToString())
    lk = api.LiveKitAPI(f"ws://127.0.0.1:{twirp.port}", KEY, SECRET)
    lk.room.list_rooms(api.ListRoomsRequest())  # the livekit client exists now
    reachable = list(_walk(lk, set(), "lkapi"))
    assert len(reachable) > 60
    for where, value in reachable:
        assert not inspect.iscoroutinefunction(value), where
        assert not inspect.isasyncgenfunction(value), where
        assert not inspect.iscoroutine(value), where
    for name in dir(api):
        value = getattr(api, name)
        assert not inspect.iscoroutinefunction(value), name
        assert not inspect.ismodule(value) or value.__name__.startswith("syncagents."), name
    lk.close()


def test_reexports_livekit_api() -> None:
    for name in ("AccessToken", "VideoGrants", "TokenVerifier", "WebhookReceiver", "TwirpError",
                 "TwirpErrorCode", "ListParticipantsRequest", "CreateAgentDispatchRequest",
                 "CreateRoomRequest", "SendDataRequest", "UpdateParticipantRequest"):
        assert getattr(api, name) is getattr(lk_api, name), name
    assert api.LiveKitAPI is not lk_api.LiveKitAPI
    with pytest.raises(AttributeError):
        api.room_service  # noqa: B018  (livekit's async module stays out)
    with pytest.raises(AttributeError):
        api.NoSuchThing  # noqa: B018


def test_bad_arguments_fail_at_once() -> None:
    lk = api.LiveKitAPI("ws://127.0.0.1:7880", KEY, SECRET)
    with pytest.raises(TypeError, match=r"room.list_participants\(\): list must be a "
                                        r"ListParticipantsRequest, not dict"):
        lk.room.list_participants({"room": "r"})
    with pytest.raises(TypeError, match=r"room.list_participants\(\): missing"):
        lk.room.list_participants()
    with pytest.raises(TypeError, match=r"agent_dispatch.list_dispatch\(\): room_name must be"):
        lk.agent_dispatch.list_dispatch(room_name=3)
    with pytest.raises(TypeError, match="unexpected keyword"):
        lk.room.list_rooms(api.ListRoomsRequest(), bogus=1)


# -- calls --------------------------------------------------------------------------------------


def test_call_round_trip_through_a_hostname(twirp: TwirpDouble) -> None:
    answer = room.ListRoomsResponse(rooms=[models.Room(name="r1", num_participants=2)])
    twirp.handler = lambda path, headers, body: (200, answer.SerializeToString())
    # "localhost" needs a DNS lookup: it must not hang on the bridge loop's executor
    with api.LiveKitAPI(f"ws://localhost:{twirp.port}", KEY, SECRET) as lk:
        rooms = lk.room.list_rooms(api.ListRoomsRequest(names=["r1"]), timeout=20)
    assert [r.name for r in rooms.rooms] == ["r1"]
    path, headers, body = twirp.requests[-1]
    assert path == "/twirp/livekit.RoomService/ListRooms"
    assert headers["authorization"].startswith("Bearer eyJ")
    assert room.ListRoomsRequest.FromString(body).names == ["r1"]
    claims = api.TokenVerifier(KEY, SECRET).verify(headers["authorization"][7:])
    assert claims.video.room_list


def test_server_error_keeps_code_and_loses_secrets(twirp: TwirpDouble) -> None:
    def refuse(path: str, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
        # a server that quotes what it rejected: the token, and (absurdly) the secret
        msg = f"invalid token {headers['authorization'][7:]} for secret {SECRET}"
        meta = {"token": headers["authorization"]}
        return 401, json.dumps({"code": "unauthenticated", "msg": msg, "meta": meta}).encode()

    twirp.handler = refuse
    with (
        api.LiveKitAPI(f"ws://127.0.0.1:{twirp.port}", KEY, SECRET) as lk,
        pytest.raises(api.TwirpError) as info,
    ):
        lk.room.delete_room(api.DeleteRoomRequest(room="r"))
    err = info.value
    assert (err.code, err.status) == (api.TwirpErrorCode.UNAUTHENTICATED, 401)
    assert err.message == "invalid token <token> for secret <secret>"
    assert err.metadata == {"token": "Bearer <token>"}
    assert err.__context__ is None and err.__cause__ is None
    assert_clean(err)


def test_plain_text_rejection_becomes_its_twirp_error(twirp: TwirpDouble) -> None:
    # livekit-server answers a bad token with HTTP 401 and a text body quoting the token
    twirp.handler = lambda path, headers, body: (
        401, f"invalid token: {headers['authorization'][7:]}, error: bad signature".encode()
    )
    with (
        api.LiveKitAPI(f"ws://127.0.0.1:{twirp.port}", KEY, SECRET) as lk,
        pytest.raises(api.TwirpError) as info,
    ):
        lk.room.list_rooms(api.ListRoomsRequest())
    err = info.value
    assert (err.code, err.status) == (api.TwirpErrorCode.UNAUTHENTICATED, 401)
    assert err.message == "invalid token: <token>, error: bad signature"
    assert_clean(err)


def test_unreachable_server_is_a_clean_connection_error() -> None:
    port = free_port()  # nobody listens there
    with (
        api.LiveKitAPI(f"ws://127.0.0.1:{port}", KEY, SECRET) as lk,
        pytest.raises(ConnectionError) as info,
    ):
        lk.room.list_participants(api.ListParticipantsRequest(room="r"), timeout=20)
    err = info.value
    assert isinstance(err, api.APIConnectionError)
    assert f"127.0.0.1:{port}" in str(err) and "room.list_participants" in str(err)
    assert err.__context__ is None and err.__cause__ is None
    assert_clean(err)


def test_timeouts_are_builtin_and_block_only_the_caller(twirp: TwirpDouble) -> None:
    def hang(path: str, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
        twirp.release.wait(30)
        return 200, room.ListRoomsResponse().SerializeToString()

    twirp.handler = hang
    with api.LiveKitAPI(f"ws://127.0.0.1:{twirp.port}", KEY, SECRET) as lk:
        with pytest.raises(TimeoutError) as per_call:  # the call's own timeout
            lk.room.list_rooms(api.ListRoomsRequest(), timeout=0.3)
        assert_clean(per_call.value)

        # another greenlet's call waits, this one carries on
        pending = gevent.spawn(lk.room.list_rooms, api.ListRoomsRequest())
        gevent.sleep(0)
        assert not pending.ready()
        twirp.release.set()
        assert pending.get(timeout=20) == room.ListRoomsResponse()

    twirp.release.clear()
    with api.LiveKitAPI(f"ws://127.0.0.1:{twirp.port}", KEY, SECRET, timeout=0.3) as short:
        with pytest.raises(TimeoutError) as client_default:  # the client's timeout
            short.room.list_rooms(api.ListRoomsRequest())
        assert "room.list_rooms" in str(client_default.value)
        assert_clean(client_default.value)
        # a SIP call that does not wait to be answered gets the client's timeout too
        with pytest.raises(TimeoutError):
            short.sip.create_sip_participant(
                api.CreateSIPParticipantRequest(sip_trunk_id="ST_x", sip_call_to="+100")
            )


def test_close_and_context_manager(twirp: TwirpDouble) -> None:
    twirp.handler = lambda path, headers, body: (200, room.ListRoomsResponse().SerializeToString())
    with api.LiveKitAPI(f"ws://127.0.0.1:{twirp.port}", KEY, SECRET) as lk:
        lk.room.list_rooms(api.ListRoomsRequest())
        assert lk._conn in api_client._clients
    assert lk.closed and lk._conn not in api_client._clients  # session closed
    lk.close()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        lk.room.list_rooms(api.ListRoomsRequest())


# -- JobContext ---------------------------------------------------------------------------------


def test_job_context_api_and_delete_room(twirp: TwirpDouble) -> None:
    twirp.handler = lambda path, headers, body: (200, room.DeleteRoomResponse().SerializeToString())
    job = make_job("call-7")
    ctx = JobContext(job, url=f"ws://127.0.0.1:{twirp.port}", api_key=KEY, api_secret=SECRET)
    seen: list[Any] = []

    def entrypoint(ctx: JobContext) -> None:
        seen.append(ctx.api)
        assert ctx.api is seen[0]  # one client per job
        ctx.delete_room(timeout=20)

    result = run_job(ctx, entrypoint)
    assert not result.failed, result.error
    path, headers, body = twirp.requests[-1]
    assert path == "/twirp/livekit.RoomService/DeleteRoom"
    assert room.DeleteRoomRequest.FromString(body).room == "call-7"
    assert api.TokenVerifier(KEY, SECRET).verify(headers["authorization"][7:]).video.room_create
    assert seen[0].url == f"http://127.0.0.1:{twirp.port}"
    assert seen[0].closed  # closed when the job ended
    with pytest.raises(RuntimeError, match="ended"):
        ctx.api  # noqa: B018
    assert SECRET not in repr(ctx)
