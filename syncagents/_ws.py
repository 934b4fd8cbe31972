"""The worker's side of LiveKit's agent protocol: one WebSocket to ``<url>/agent``.

Protobuf ``WorkerMessage`` frames go out, ``ServerMessage`` frames come in. The socket is
websocket-client's, which is cooperative once gevent has patched ``socket``. One greenlet reads
(:meth:`AgentConnection.recv_batch`: every message one socket read brought in). Any greenlet
may send: :meth:`AgentConnection.send` queues, and the connection's writer greenlet writes
everything queued by the time it runs in one write, so a burst of offers is answered with one
system call, not one per offer, and the status updates of the jobs a burst starts go out
together too.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import socket
import time
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urljoin, urlparse

import gevent
import gevent.event
import gevent.lock
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
    cost when offers arrive in bursts. The plain frames the agent server sends are taken
    from that buffer directly (:meth:`take_binary`); everything else goes through
    websocket-client's frame reader, which reads from the same buffer."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._rbuf = b""  # bytes read from the socket; those before _rpos are consumed
        self._rpos = 0
        # No fragmented message can be half-read by websocket-client: true until its reader
        # returns a control frame (which may come between fragments), and again once it
        # returns a whole message.
        self.at_message_start = True
        super().__init__(*args, **kwargs)

    def _recv(self, bufsize: int) -> bytes:
        buf, pos = self._rbuf, self._rpos
        if pos < len(buf):
            out = buf[pos : pos + bufsize]
            self._rpos = pos + len(out)
            return out
        sock = self.sock
        if sock is None:
            raise websocket.WebSocketConnectionClosedException("socket is already closed.")
        try:
            chunk: bytes = sock.recv(max(bufsize, 65536))
        except TimeoutError as exc:
            raise websocket.WebSocketTimeoutException(str(exc)) from None
        if not chunk:
            raise websocket.WebSocketConnectionClosedException(
                "Connection to remote host was lost."
            )
        if len(chunk) > bufsize:
            self._rbuf, self._rpos = chunk, bufsize
            return chunk[:bufsize]
        self._rbuf, self._rpos = b"", 0
        return chunk

    def take_binary(self) -> bytes | None:
        """The payload of the next frame when the bytes already read hold all of it and it
        is a plain binary message (final, unmasked, no extension bits: what the agent server
        sends), taken without websocket-client's frame reader (two dozen calls a frame).
        ``None`` when it is not: read it with ``recv_data_frame``."""
        if not self.at_message_start:
            return None
        buf, pos = self._rbuf, self._rpos
        # FIN + binary with no RSV bit, unmasked (a masked frame is websocket-client's to reject)
        if len(buf) - pos < 2 or buf[pos] != 0x82 or buf[pos + 1] & 0x80:
            return None
        bounds = _frame_bounds(buf, pos)
        if bounds is None:
            return None
        start, end = bounds
        self._rpos = end
        return buf[start:end]

    def message_buffered(self) -> bool:
        """Whether the bytes already read hold a whole message (or a control frame), so that
        reading it cannot block. Frames of a fragmented message count only once its last
        fragment is in: a batch never waits in the middle for the rest of a message."""
        buf, pos = self._rbuf, self._rpos
        while (bounds := _frame_bounds(buf, pos)) is not None:
            first = buf[pos]
            if first & 0x80 or first & 0x08:  # FIN, or a control frame (never fragmented)
                return True
            pos = bounds[1]
        return False

    def send_binary_frames(self, payloads: Sequence[bytes]) -> None:
        """Send each payload as one binary frame, all in one write (websocket-client's
        ``send`` makes a system call per frame)."""
        data = b"".join(websocket.ABNF.create_frame(p, websocket.ABNF.OPCODE_BINARY).format()
                        for p in payloads)
        with self.lock:
            sock = self.sock
            if sock is None:
                raise websocket.WebSocketConnectionClosedException("socket is already closed.")
            sock.sendall(data)


def _frame_bounds(buf: bytes, pos: int) -> tuple[int, int] | None:
    """Where the payload of the RFC 6455 frame at ``buf[pos]`` starts and ends (a masked
    frame's key counts as header), or ``None`` while the frame is not all in ``buf``."""
    size = len(buf) - pos
    if size < 2:
        return None
    second = buf[pos + 1]
    length = second & 0x7F
    head = 2
    if length == 126:
        head = 4
        if size < head:
            return None
        length = int.from_bytes(buf[pos + 2 : pos + 4], "big")
    elif length == 127:
        head = 10
        if size < head:
            return None
        length = int.from_bytes(buf[pos + 2 : pos + 10], "big")
    if second & 0x80:
        head += 4  # the masking key (a server must not mask; websocket-client's reader says so)
    if size < head + length:
        return None
    return pos + head, pos + head + length


Unsent = Callable[[list[proto.WorkerMessage]], None]


class AgentConnection:
    """One open, upgraded WebSocket to the agent endpoint.

    ``on_unsent(msgs)`` is called with the messages :meth:`send` accepted that were never
    written because the connection broke (a broken write counts as unsent as a whole).
    """

    def __init__(self, ws: _BufferedWebSocket, url: str, on_unsent: Unsent | None = None) -> None:
        self._ws = ws
        self.url = url
        self.closed = False
        self.on_unsent = on_unsent
        self.pong_received = gevent.event.Event()
        self.finished = gevent.event.Event()  # the reading side saw the end of the connection
        self._queue: list[proto.WorkerMessage] = []
        self._queued = gevent.event.Event()
        self._queued_count = 0  # messages ever queued, and ever written: both in queue order
        self._written_count = 0
        self._written = gevent.event.Event()  # replaced after every write (wakes all waiters)
        self._write_lock = gevent.lock.Semaphore()  # queued batches go out in the order taken
        self._sealed = False  # the close frame is out: nothing may follow it
        # Spawned here, by the greenlet that opens the connection and outside any job: a
        # writer spawned by a job's greenlet (its first status update) would belong to the
        # job's nursery and die with the job.
        self._writer = gevent.spawn(self._write_loop)

    @classmethod
    def open(
        cls, ws_url: str, token: str, *, timeout: float = 10.0, on_unsent: Unsent | None = None
    ) -> AgentConnection:
        """Connect and upgrade. Raises :class:`CredentialsRejected` on 401/403; any other
        failure (refused, timeout, other HTTP status) raises ``OSError`` or
        ``websocket.WebSocketException`` and is worth a retry."""
        url = agent_url(ws_url)
        try:
            ws: _BufferedWebSocket = websocket.create_connection(  # type: ignore[assignment]
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
        return cls(ws, url, on_unsent)

    def settimeout(self, timeout: float | None) -> None:
        self._ws.settimeout(timeout)

    def send(self, msg: proto.WorkerMessage) -> None:
        """Queue ``msg`` for the writer greenlet; returns at once. Messages go out in the order
        they were queued. ``ConnectionError`` once the connection is closed."""
        if self.closed or self._sealed:
            raise ConnectionError("the agent connection is closed")
        self._queue.append(msg)
        self._queued_count += 1
        self._queued.set()

    @property
    def queued(self) -> int:
        """How many messages were ever queued on this connection (``wait_written``'s mark)."""
        return self._queued_count

    def wait_written(self, count: int, timeout: float | None = None) -> bool:
        """Block until the first ``count`` messages queued have been written to the socket
        (at once when they are); False if the connection broke first or ``timeout`` passed."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self._written_count < count and not self.closed:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return False
            self._written.wait(left)
        return self._written_count >= count

    def flush(self) -> None:
        """Write what is queued now, in the calling greenlet (raises what the socket raises)."""
        with self._write_lock:
            self._write_queued()

    def _write_queued(self) -> None:
        batch, self._queue = self._queue, []
        if not batch:
            return
        try:
            self._ws.send_binary_frames([msg.SerializeToString() for msg in batch])
        except BaseException:
            self._unsent(batch)
            raise
        self._written_count += len(batch)
        written, self._written = self._written, gevent.event.Event()
        written.set()

    def _write_loop(self) -> None:
        while True:
            self._queued.wait()
            self._queued.clear()
            if self.closed:
                return
            try:
                self.flush()
            except Exception as exc:
                if not self.closed:
                    logger.debug("send failed ({}); the connection will be re-established", exc)
                    self.abort()  # the reading greenlet wakes with an error and reconnects
                return

    def _unsent(self, msgs: list[proto.WorkerMessage]) -> None:
        if msgs and self.on_unsent is not None:
            self.on_unsent(msgs)

    def ping(self) -> None:
        self._ws.ping(str(int(time.time() * 1000)))

    def recv(self) -> proto.ServerMessage | None:
        """The next server message; ``None`` for a frame that was dropped (logged).

        Raises ``ConnectionError`` when the server closed the connection, and whatever the
        socket raises when it broke.
        """
        try:
            return self._recv()
        except BaseException:
            self.finished.set()
            raise

    def recv_batch(self) -> list[proto.ServerMessage]:
        """The next server message and every further one already read from the socket, in
        order (blocks for the first only). Empty when only dropped frames came in; raises
        like :meth:`recv`."""
        ws = self._ws
        try:
            msg = self._recv()
            batch = [msg] if msg is not None else []
            while ws.message_buffered():
                _, msg = self._read_one()
                if msg is not None:
                    batch.append(msg)
        except BaseException:
            self.finished.set()
            raise
        return batch

    def _recv(self) -> proto.ServerMessage | None:
        while True:
            is_data, msg = self._read_one()
            if is_data:
                return msg

    def _read_one(self) -> tuple[bool, proto.ServerMessage | None]:
        """Read one control frame, ``(False, None)``, or one data message, ``(True, msg)``
        with ``msg`` ``None`` when the frame was dropped (logged)."""
        ws = self._ws
        data = ws.take_binary()
        if data is None:
            opcode, frame = ws.recv_data_frame(control_frame=True)
            # a control frame may have come between the fragments of a message
            ws.at_message_start = opcode < 0x8
            data = frame.data
        else:
            opcode = websocket.ABNF.OPCODE_BINARY
        if opcode == websocket.ABNF.OPCODE_PONG:
            self.pong_received.set()
            return False, None
        if opcode == websocket.ABNF.OPCODE_PING:
            return False, None  # websocket-client has already answered it
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            raise ConnectionError("the server closed the agent connection")
        if opcode != websocket.ABNF.OPCODE_BINARY:
            logger.warning("dropped a non-binary frame from the agent server ({} bytes)", len(data))
            return True, None
        msg = proto.ServerMessage()
        try:
            msg.ParseFromString(data)
        except (DecodeError, ValueError) as exc:
            logger.warning(
                "dropped an undecodable frame from the agent server ({} bytes: {})", len(data), exc
            )
            return True, None
        if msg.WhichOneof("message") is None:
            logger.warning("dropped a server frame with no known message ({} bytes)", len(data))
            return True, None
        return True, msg

    def abort(self) -> None:
        """Break the connection now: a greenlet blocked in :meth:`recv` wakes with an error;
        what is still queued is handed to ``on_unsent``."""
        self.closed = True
        sock: Any = self._ws.sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._ws.shutdown()
        self._queued.set()  # the writer ends
        self._written.set()  # and so does every wait_written
        leftover, self._queue = self._queue, []
        self._unsent(leftover)

    def close(self, timeout: float = 2.0) -> None:
        """Say goodbye with a close frame and wait (at most ``timeout`` s) until the greenlet
        reading the connection saw the server's answer: everything sent before (final job
        updates) has then been read by the server. Then drop the socket."""
        if self.closed:
            return
        try:
            with self._write_lock:
                self._write_queued()  # what was sent before (final job updates) goes first
                self._sealed = True
                self._ws.send(b"\x03\xe8", websocket.ABNF.OPCODE_CLOSE)
            self.finished.wait(timeout)
        except Exception:  # already broken: nothing to say goodbye to
            pass
        self.abort()
