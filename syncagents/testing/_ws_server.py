"""Server side of RFC 6455 for the dispatch test double, on gevent's ``StreamServer``.

websocket-client is a client only. The double reads the upgrade request itself (it must see
the path and token to answer 404/401 like livekit-server), and leaves the framing to wsproto,
a sans-IO implementation of the protocol. Sends are serialised with a gevent lock because
several greenlets (dispatches, terminations, the reader answering pings) write to one
connection.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO
from urllib.parse import parse_qs, urlsplit

import gevent.lock
from wsproto.connection import Connection, ConnectionType
from wsproto.events import BytesMessage, CloseConnection, Event, Ping, Pong, TextMessage
from wsproto.utilities import LocalProtocolError, generate_accept_token

__all__ = [
    "OP_BINARY",
    "OP_CLOSE",
    "OP_PING",
    "OP_PONG",
    "OP_TEXT",
    "ConnectionClosed",
    "HttpRequest",
    "ServerWebSocket",
    "http_response",
    "read_http_request",
    "upgrade_response",
]

OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x1, 0x2, 0x8, 0x9, 0xA
_MAX_HEADER_BYTES = 64 * 1024
_MAX_MESSAGE = 16 * 1024 * 1024


class ConnectionClosed(Exception):
    """The peer closed (close frame or EOF)."""


@dataclass
class HttpRequest:
    method: str
    target: str
    headers: dict[str, str] = field(default_factory=dict)  # lower-cased names

    @property
    def path(self) -> str:
        return urlsplit(self.target).path

    @property
    def query(self) -> dict[str, list[str]]:
        return parse_qs(urlsplit(self.target).query)

    def is_websocket_upgrade(self) -> bool:
        return (
            self.method == "GET"
            and "websocket" in self.headers.get("upgrade", "").lower()
            and "upgrade" in self.headers.get("connection", "").lower()
            and bool(self.headers.get("sec-websocket-key"))
        )


def read_http_request(rfile: BinaryIO) -> HttpRequest | None:
    """Read a request line and headers; ``None`` when the peer went away or sent garbage."""
    line = rfile.readline(_MAX_HEADER_BYTES)
    parts = line.decode("latin-1").strip().split()
    if len(parts) != 3 or not parts[2].startswith("HTTP/"):
        return None
    request = HttpRequest(method=parts[0].upper(), target=parts[1])
    total = len(line)
    while True:
        line = rfile.readline(_MAX_HEADER_BYTES)
        total += len(line)
        if not line or total > _MAX_HEADER_BYTES:
            return None
        if line in (b"\r\n", b"\n"):
            return request
        name, _, value = line.decode("latin-1").partition(":")
        request.headers[name.strip().lower()] = value.strip()


def http_response(
    status: int, reason: str, body: bytes = b"", headers: dict[str, str] | None = None
) -> bytes:
    head = [f"HTTP/1.1 {status} {reason}", f"Content-Length: {len(body)}", "Connection: close"]
    head += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body


def upgrade_response(key: str) -> bytes:
    """The ``101 Switching Protocols`` answer to a client's ``Sec-WebSocket-Key``."""
    accept = generate_accept_token(key.encode("latin-1")).decode("latin-1")
    return (
        "HTTP/1.1 101 Switching Protocols\r\n"
        "Upgrade: websocket\r\n"
        "Connection: Upgrade\r\n"
        f"Sec-WebSocket-Accept: {accept}\r\n\r\n"
    ).encode("latin-1")


class ServerWebSocket:
    """An upgraded connection, framed by wsproto (RFC 6455, sans-IO): it refuses what a real
    server refuses (unmasked client frames, oversized control frames, bad UTF-8 in text).
    One greenlet calls :meth:`recv`; any greenlet may send."""

    def __init__(
        self,
        sock: socket.socket,
        rfile: BinaryIO,
        *,
        answer_ping: Callable[[], bool] = lambda: True,
    ) -> None:
        self.sock = sock
        self._rfile = rfile  # may hold bytes read past the handshake
        self._ws = Connection(ConnectionType.SERVER)
        self._send_lock = gevent.lock.Semaphore()
        self._answer_ping = answer_ping
        self._events: Iterator[Event] = iter(())
        self.closed = False

    def _next_event(self) -> Event:
        while True:
            event = next(self._events, None)
            if event is not None:
                return event
            data = self._rfile.read1(65536)  # type: ignore[attr-defined]
            if not data:
                raise ConnectionClosed("connection closed by the peer")
            self._ws.receive_data(data)
            self._events = iter(list(self._ws.events()))

    def recv(self) -> tuple[int, bytes]:
        """The next data message as ``(opcode, payload)``; control frames are handled here."""
        parts: list[bytes] = []
        size = 0
        while True:
            event = self._next_event()
            if isinstance(event, Ping):
                if self._answer_ping():
                    self._send_event(event.response())
                continue
            if isinstance(event, Pong):
                continue
            if isinstance(event, CloseConnection):
                try:
                    self._send_event(event.response())
                except (OSError, LocalProtocolError):
                    pass
                raise ConnectionClosed(f"close frame {event.code}: {event.reason or ''}".strip())
            if isinstance(event, (BytesMessage, TextMessage)):
                chunk = event.data.encode() if isinstance(event.data, str) else bytes(event.data)
                size += len(chunk)
                if size > _MAX_MESSAGE:
                    self.close(1009)  # message too big
                    raise ConnectionClosed(f"message of over {_MAX_MESSAGE} bytes")
                parts.append(chunk)
                if event.message_finished:
                    opcode = OP_TEXT if isinstance(event, TextMessage) else OP_BINARY
                    return opcode, b"".join(parts)

    def _send_event(self, event: Event) -> None:
        with self._send_lock:
            data = self._ws.send(event)
            self.sock.sendall(data)

    def send(self, payload: bytes, opcode: int = OP_BINARY) -> None:
        """Send one data message (``OP_BINARY`` or ``OP_TEXT``)."""
        if opcode == OP_TEXT:
            self._send_event(TextMessage(data=payload.decode("utf-8", "replace")))
        else:
            self._send_event(BytesMessage(data=payload))

    def close(self, code: int = 1000) -> None:
        if self.closed:
            return
        try:
            self._send_event(CloseConnection(code=code))
        except (OSError, LocalProtocolError):
            pass
        self.abort()

    def abort(self) -> None:
        """Drop the TCP connection without a close frame (a network failure, as seen by the
        worker)."""
        self.closed = True
        sock: Any = self.sock
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        try:
            sock.close()
        except OSError:
            pass
