"""The worker's side of LiveKit's agent protocol: one WebSocket to ``<url>/agent``.

Protobuf ``WorkerMessage`` frames go out, ``ServerMessage`` frames come in. The socket is
websocket-client's, which is cooperative once gevent has patched ``socket``: one greenlet
reads (:meth:`AgentConnection.recv`), any greenlet may send (websocket-client serialises
writers with its own lock, a gevent lock after patching).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import socket
import time
from typing import Any
from urllib.parse import urljoin, urlparse

import gevent.event
import websocket
from google.protobuf.message import DecodeError
from livekit.protocol import agent as proto
from loguru import logger

from ._internals import check_websocket

__all__ = [
    "AgentConnection",
    "CredentialsRejected",
    "ProtocolViolation",
    "agent_url",
    "mint_worker_token",
]


class CredentialsRejected(Exception):
    """The server answered the upgrade with 401/403: retrying cannot help."""

    def __init__(self, url: str, status: int) -> None:
        super().__init__(f"LiveKit API key/secret were rejected by {url} (HTTP {status})")
        self.url = url
        self.status = status


class ProtocolViolation(Exception):
    """The server broke the protocol (e.g. its first message was not ``register``)."""


def agent_url(ws_url: str) -> str:
    """``<ws_url>/agent`` with http→ws / https→wss, joined like livekit-agents does.

    A path in the configured URL is kept (``wss://host/prefix`` → ``wss://host/prefix/agent``).
    """
    parsed = urlparse(ws_url.strip())
    scheme = parsed.scheme.lower()
    if scheme.startswith("http"):
        scheme = scheme.replace("http", "ws", 1)
    if scheme not in ("ws", "wss"):
        raise ValueError(
            f"unsupported LiveKit URL {ws_url!r} (expected ws://, wss://, http://, https://)"
        )
    base = f"{scheme}://{parsed.netloc}{parsed.path}".rstrip("/") + "/"
    return urljoin(base, "agent")


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def mint_worker_token(api_key: str, api_secret: str, ttl: float = 6 * 3600) -> str:
    """A JWT whose only grant is ``video.agent``: what the server wants on ``/agent``.

    The claims are exactly those of ``livekit.api.AccessToken(key, secret).with_grants(
    VideoGrants(agent=True)).to_jwt()`` (a test checks it), signed here with the standard
    library: importing livekit.api pulls in aiohttp and costs ~0.3 s of a worker's start-up.
    """
    now = int(time.time())
    claims = {
        "video": {"canPublish": True, "canSubscribe": True, "canPublishData": True, "agent": True},
        "sub": "",
        "iss": api_key,
        "nbf": now,
        "exp": now + int(ttl),
    }
    return sign_jwt(claims, api_secret)


def sign_jwt(claims: dict[str, Any], api_secret: str) -> str:
    """``claims`` as an HS256 JWT signed with ``api_secret`` (LiveKit's token format)."""
    header = _b64url(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    payload = _b64url(json.dumps(claims, separators=(",", ":")).encode())
    signing_input = f"{header}.{payload}".encode("ascii")
    signature = hmac.new(api_secret.encode(), signing_input, hashlib.sha256).digest()
    return f"{header}.{payload}.{_b64url(signature)}"


check_websocket(websocket.WebSocket)  # _recv(bufsize) is overridden below


class _BufferedWebSocket(websocket.WebSocket):
    """websocket-client reads every frame with three or four small ``recv()`` calls (header,
    length, payload); one 64 KiB read serves many frames instead, which halves the per-frame
    cost when offers arrive in bursts."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._rbuf = bytearray()
        super().__init__(*args, **kwargs)

    def _recv(self, bufsize: int) -> bytes:
        buf = self._rbuf
        if not buf:
            sock = self.sock
            if sock is None:
                raise websocket.WebSocketConnectionClosedException("socket is already closed.")
            try:
                chunk = sock.recv(max(bufsize, 65536))
            except TimeoutError as exc:
                raise websocket.WebSocketTimeoutException(str(exc)) from None
            if not chunk:
                raise websocket.WebSocketConnectionClosedException(
                    "Connection to remote host was lost."
                )
            if len(chunk) <= bufsize:
                return bytes(chunk)
            buf += chunk
        out = bytes(buf[:bufsize])
        del buf[:bufsize]
        return out


class AgentConnection:
    """One open, upgraded WebSocket to the agent endpoint."""

    def __init__(self, ws: websocket.WebSocket, url: str) -> None:
        self._ws = ws
        self.url = url
        self.closed = False
        self.pong_received = gevent.event.Event()
        self.finished = gevent.event.Event()  # the reading side saw the end of the connection

    @classmethod
    def open(cls, ws_url: str, token: str, *, timeout: float = 10.0) -> AgentConnection:
        """Connect and upgrade. Raises :class:`CredentialsRejected` on 401/403; any other
        failure (refused, timeout, other HTTP status) raises ``OSError`` or
        ``websocket.WebSocketException`` and is worth a retry."""
        url = agent_url(ws_url)
        try:
            ws = websocket.create_connection(
                url,
                class_=_BufferedWebSocket,
                timeout=timeout,
                header=[f"Authorization: Bearer {token}"],
                enable_multithread=True,  # a (patched) lock around writes: several greenlets send
                skip_utf8_validation=True,
                suppress_origin=True,
            )
        except websocket.WebSocketBadStatusException as exc:
            if exc.status_code in (401, 403):
                raise CredentialsRejected(ws_url, exc.status_code) from None
            raise
        return cls(ws, url)

    def settimeout(self, timeout: float | None) -> None:
        self._ws.settimeout(timeout)

    def send(self, msg: proto.WorkerMessage) -> None:
        self._ws.send(msg.SerializeToString(), websocket.ABNF.OPCODE_BINARY)

    def ping(self) -> None:
        self._ws.ping(str(int(time.time() * 1000)))

    def recv(self) -> proto.ServerMessage | None:
        try:
            return self._recv()
        except BaseException:
            self.finished.set()
            raise

    def _recv(self) -> proto.ServerMessage | None:
        """The next server message; ``None`` for a frame that was dropped (logged).

        Raises ``ConnectionError`` when the server closed the connection, and whatever the
        socket raises when it broke.
        """
        while True:
            opcode, frame = self._ws.recv_data_frame(control_frame=True)
            if opcode == websocket.ABNF.OPCODE_PONG:
                self.pong_received.set()
                continue
            if opcode == websocket.ABNF.OPCODE_PING:
                continue  # websocket-client has already answered it
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                raise ConnectionError("the server closed the agent connection")
            data = frame.data
            if opcode != websocket.ABNF.OPCODE_BINARY:
                logger.warning(
                    "dropped a non-binary frame from the agent server ({} bytes)", len(data)
                )
                return None
            msg = proto.ServerMessage()
            try:
                msg.ParseFromString(data)
            except (DecodeError, ValueError) as exc:
                logger.warning(
                    "dropped an undecodable frame from the agent server ({} bytes: {})",
                    len(data),
                    exc,
                )
                return None
            if msg.WhichOneof("message") is None:
                logger.warning("dropped a server frame with no known message ({} bytes)", len(data))
                return None
            return msg

    def abort(self) -> None:
        """Break the connection now: a greenlet blocked in :meth:`recv` wakes with an error."""
        self.closed = True
        sock: Any = self._ws.sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._ws.shutdown()

    def close(self, timeout: float = 2.0) -> None:
        """Say goodbye with a close frame and wait (at most ``timeout`` s) until the greenlet
        reading the connection saw the server's answer: everything sent before (final job
        updates) has then been read by the server. Then drop the socket."""
        if self.closed:
            return
        try:
            self._ws.send(b"\x03\xe8", websocket.ABNF.OPCODE_CLOSE)
            self.finished.wait(timeout)
        except Exception:  # already broken: nothing to say goodbye to
            pass
        self.abort()
