"""Server side of RFC 6455, just enough for the dispatch test double.

websocket-client is a client only, so the double speaks the handshake and the framing itself:
an HTTP/1.1 upgrade, unmasking client frames, fragment reassembly, ping/pong/close. Sends are
serialised with a gevent lock because several greenlets (dispatches, terminations, the
reader answering pings) write to one connection.
"""

from __future__ import annotations

import base64
import hashlib
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, BinaryIO
from urllib.parse import parse_qs, urlsplit

import gevent.lock

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

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
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
    accept = base64.b64encode(hashlib.sha1(key.encode("latin-1") + _GUID).digest()).decode()
    return (
        "HTTP/1.1 101 Switching Protocols\r\n"
        "Upgrade: websocket\r\n"
        "Connection: Upgrade\r\n"
        f"Sec-WebSocket-Accept: {accept}\r\n\r\n"
    ).encode("latin-1")


def _unmask(data: bytes, mask: bytes) -> bytes:
    n = len(data)
    if n == 0:
        return data
    key = (mask * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "little") ^ int.from_bytes(key, "little")).to_bytes(n, "little")


def _frame(opcode: int, payload: bytes) -> bytes:
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, n)
    elif n < 1 << 16:
        head = struct.pack("!BBH", 0x80 | opcode, 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 127, n)
    return head + payload


class ServerWebSocket:
    """An upgraded connection. One greenlet calls :meth:`recv`; any greenlet may send."""

    def __init__(
        self,
        sock: socket.socket,
        rfile: BinaryIO,
        *,
        answer_ping: Callable[[], bool] = lambda: True,
    ) -> None:
        self.sock = sock
        self._rfile = rfile
        self._send_lock = gevent.lock.Semaphore()
        self._answer_ping = answer_ping
        self.closed = False

    def _read_exact(self, n: int) -> bytes:
        data = self._rfile.read(n)
        if data is None or len(data) < n:
            raise ConnectionClosed("connection closed by the peer")
        return bytes(data)

    def _read_frame(self) -> tuple[bool, int, bytes]:
        b0, b1 = self._read_exact(2)
        fin, opcode, masked, n = bool(b0 & 0x80), b0 & 0x0F, bool(b1 & 0x80), b1 & 0x7F
        if n == 126:
            (n,) = struct.unpack("!H", self._read_exact(2))
        elif n == 127:
            (n,) = struct.unpack("!Q", self._read_exact(8))
        if n > _MAX_MESSAGE:
            raise ConnectionClosed(f"frame of {n} bytes is too large")
        mask = self._read_exact(4) if masked else b""
        payload = self._read_exact(n)
        return fin, opcode, _unmask(payload, mask) if masked else payload

    def recv(self) -> tuple[int, bytes]:
        """The next data message as ``(opcode, payload)``; control frames are handled here."""
        message_op: int | None = None
        parts: list[bytes] = []
        while True:
            fin, opcode, payload = self._read_frame()
            if opcode == OP_PING:
                if self._answer_ping():
                    self.send(payload, OP_PONG)
                continue
            if opcode == OP_PONG:
                continue
            if opcode == OP_CLOSE:
                try:
                    self.send(payload[:2], OP_CLOSE)
                except OSError:
                    pass
                raise ConnectionClosed("close frame")
            if opcode != OP_CONT:
                message_op, parts = opcode, []
            parts.append(payload)
            if fin and message_op is not None:
                return message_op, b"".join(parts)

    def send(self, payload: bytes, opcode: int = OP_BINARY) -> None:
        data = _frame(opcode, payload)
        with self._send_lock:
            self.sock.sendall(data)

    def close(self, code: int = 1000) -> None:
        if self.closed:
            return
        try:
            self.send(struct.pack("!H", code), OP_CLOSE)
        except OSError:
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
