"""``DispatchServer``: an in-process test double of LiveKit's agent dispatch endpoint.

It follows livekit-server's ``pkg/service/agentservice.go`` and ``pkg/agent/worker.go``: a
WebSocket at ``/agent`` that needs a JWT with ``video.agent``; ``register`` answered with a
worker id (10 s to register); ``availability`` offers answered within 10 s; an ``assignment``
carrying a token built from the worker's answer and its registered permissions, with the
``lk.agent_name`` attribute; ``termination``; ``simulate_job``; protocol and WebSocket pongs.
Jobs are selected like the real server does (available workers only; a busy worker with the
highest load first, to pack jobs), and a worker that declines passes the job on.

Differences, for testability: job state lives on the server rather than on one worker
connection, so a worker that reconnects keeps reporting its jobs (the real server forgets
them with the connection); and after a termination the double keeps listening for the
worker's own ``JS_SUCCESS`` instead of recording one itself.

Fault injection: :meth:`drop_connections`, :meth:`stop` then :meth:`start` on the same port,
:meth:`send_raw` (e.g. a non-protobuf frame), ``reject_auth`` (401 for every upgrade),
``answer_pings`` (``False``: WebSocket pings go unanswered).

Rooms: there is no media server behind the double, so each assignment carries a ``local://``
URL (in the ``url`` field a real server leaves empty) naming a :class:`LocalRoom` of this
process; ``JobContext.connect()`` joins that room (checking the job token as a server
would), so a whole agent runs against the double when the worker runs in the same process.
The test plays the user through the job's handle: ``job.local_room``, ``job.user_says(audio)``,
``job.user_sends(text)``, ``job.transcript``, ``job.user_leaves()``. ``local_rooms=False``
sends assignments without a URL, exactly like livekit-server.
"""

from __future__ import annotations

import secrets
import socket
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import gevent
import gevent.event
import gevent.pool
from gevent.server import StreamServer
from livekit.protocol import agent as proto
from livekit.protocol import models
from loguru import logger

from ._local_urls import register_local_room, unregister_local_room
from ._ws_server import (
    OP_BINARY,
    OP_TEXT,
    ConnectionClosed,
    ServerWebSocket,
    http_response,
    read_http_request,
    upgrade_response,
)

__all__ = [
    "AGENT_NAME_ATTRIBUTE",
    "DispatchServer",
    "JobHandle",
    "LocalJobRoom",
    "RegisteredWorker",
]

if TYPE_CHECKING:
    from ..console.feeder import UserAudio
    from ..console.session import ConsoleSession, Turn
    from .local_room import LocalRoom

AGENT_NAME_ATTRIBUTE = "lk.agent_name"
T = TypeVar("T")


def _short_id(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:12]}"


class _Changes:
    """Wake every waiter whenever server state changes; waiters re-check their predicate."""

    def __init__(self) -> None:
        self._event = gevent.event.Event()

    def notify(self) -> None:
        event, self._event = self._event, gevent.event.Event()
        event.set()

    def wait(self, timeout: float | None) -> None:
        """Until the next change (or ``timeout``)."""
        self._event.wait(timeout)

    def wait_until(self, predicate: Callable[[], T | None], timeout: float | None, what: str) -> T:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            value = predicate()
            if value is not None:
                return value
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise TimeoutError(f"{what} not seen within {timeout} s")
            self._event.wait(remaining)


class RegisteredWorker:
    """A worker connection that registered (kept after it disconnects, ``connected=False``)."""

    def __init__(self, worker_id: str, register: proto.RegisterWorkerRequest, conn: _Conn) -> None:
        self.id = worker_id
        self.register = register
        self.agent_name = register.agent_name
        self.version = register.version
        self.job_type = int(register.type)
        self.namespace = register.namespace if register.HasField("namespace") else ""
        self.permissions = (
            register.allowed_permissions
            if register.HasField("allowed_permissions")
            else models.ParticipantPermission(
                can_subscribe=True,
                can_publish=True,
                can_publish_data=True,
                can_update_metadata=True,
            )
        )
        self.status = proto.WS_AVAILABLE  # what livekit-server assumes until told otherwise
        self.load = 0.0
        self.job_count = 0
        self.draining = False
        self.status_updates = 0
        self.connected = True
        self.registered_at = time.time()
        self.running_jobs: set[str] = set()
        self._conn = conn

    def __repr__(self) -> str:
        return (
            f"RegisteredWorker(id={self.id!r}, agent_name={self.agent_name!r}, "
            f"connected={self.connected}, status={self.status}, load={self.load:.2f})"
        )


class JobHandle:
    """One dispatched job as the server sees it.

    ``outcome``: ``pending`` → ``assigned`` | ``rejected`` (every available worker declined)
    | ``terminated`` (the worker answered ``terminate``) | ``no_worker`` |
    ``availability_timeout``. ``status``/``error`` follow the worker's ``update_job``
    messages (all kept in ``updates``). Times are ``time.time()`` stamps.
    """

    def __init__(self, server: DispatchServer, job: proto.Job) -> None:
        self._server = server
        self.job = job
        self.outcome = "pending"
        self.worker_id = ""
        self.offered_to: list[str] = []
        self.availability: proto.AvailabilityResponse | None = None
        self.token = ""
        self._claims: Any = None
        self.status = proto.JS_PENDING
        self.error = ""
        self.updates: list[proto.UpdateJobStatus] = []
        self.terminated = False
        self.created_at = time.time()
        self.availability_sent_at = 0.0
        self.answered_at = 0.0
        self.assigned_at = 0.0
        self.running_at = 0.0
        self.ended_at = 0.0
        self.url = ""  # the room URL of the assignment (``local://...`` with local rooms)
        self._local: LocalJobRoom | None = None

    @property
    def id(self) -> str:
        """The job's id."""
        return str(self.job.id)

    @property
    def room(self) -> str:
        """The name of the job's room."""
        return str(self.job.room.name)

    @property
    def identity(self) -> str:
        """The participant identity the worker answered with ("" before its answer)."""
        return self.availability.participant_identity if self.availability else ""

    @property
    def name(self) -> str:
        """The participant name the worker answered with ("" before its answer)."""
        return self.availability.participant_name if self.availability else ""

    @property
    def metadata(self) -> str:
        """The participant metadata the worker answered with ("" before its answer)."""
        return self.availability.participant_metadata if self.availability else ""

    @property
    def claims(self) -> Any:
        """The job token's ``livekit.api.Claims`` (verified with the server's secret), or
        ``None`` before the assignment."""
        if self._claims is None and self.token:
            from livekit import api

            server = self._server
            self._claims = api.TokenVerifier(server.api_key, server.api_secret).verify(self.token)
        return self._claims

    @property
    def attributes(self) -> dict[str, str]:
        """The participant attributes in the job token (worker's answer + ``lk.agent_name``)."""
        if self.claims is not None:
            return dict(self.claims.attributes or {})
        return dict(self.availability.participant_attributes) if self.availability else {}

    @property
    def ended(self) -> bool:
        """Whether the job is over: it succeeded or failed, or was never run.

        Never run: rejected, terminated, no worker took it, or the availability answer timed out.
        """
        return self.status in (proto.JS_SUCCESS, proto.JS_FAILED) or self.outcome in (
            "rejected",
            "terminated",
            "no_worker",
            "availability_timeout",
        )

    def wait_answered(self, timeout: float | None = 10.0) -> JobHandle:
        """Until the worker answered the offer (or the dispatch otherwise settled)."""
        return self._server._changes.wait_until(
            lambda: self if self.outcome != "pending" else None, timeout, f"answer for {self.id}"
        )

    def wait_assigned(self, timeout: float | None = 10.0) -> JobHandle:
        """Until the job was assigned; ``RuntimeError`` if it was not (the outcome says why)."""
        self.wait_answered(timeout)
        if self.outcome != "assigned":
            raise RuntimeError(f"job {self.id} was not assigned: {self.outcome}")
        return self

    def wait_for_status(self, *statuses: int, timeout: float | None = 10.0) -> JobHandle:
        """Until the worker reported one of ``statuses`` (``JS_RUNNING``, ``JS_SUCCESS``, …)."""
        wanted = set(statuses)
        return self._server._changes.wait_until(
            lambda: self if any(u.status in wanted for u in self.updates) else None,
            timeout,
            f"status {sorted(wanted)} for job {self.id}",
        )

    def wait_ended(self, timeout: float | None = 10.0) -> JobHandle:
        """Until the job ended (worker's final status, or a dispatch that went nowhere)."""
        return self._server._changes.wait_until(
            lambda: self if self.ended else None, timeout, f"end of job {self.id}"
        )

    def terminate(self) -> None:
        """Send ``termination`` for this job (see :meth:`DispatchServer.terminate`)."""
        self._server.terminate(self.id)

    # -- the job's local room: the test is the user -----------------------------------------
    def _local_room(self) -> LocalJobRoom:
        if self._local is None:
            if self.outcome == "pending":
                raise RuntimeError(f"job {self.id} is not assigned yet (wait_assigned() first)")
            raise RuntimeError(
                f"job {self.id} has no local room (outcome {self.outcome!r}; rooms need "
                "DispatchServer(local_rooms=True))"
            )
        return self._local

    @property
    def local_room(self) -> LocalRoom:
        """The :class:`LocalRoom` the job's ``ctx.connect()`` joins (after the assignment).
        Its user is the test: ``user_source`` is the microphone, ``send_chat`` the chat."""
        return self._local_room().room

    @property
    def session(self) -> ConsoleSession:
        """The user's side of the local room (the console's machinery): ``lines``,
        ``turns``, ``recorder`` (the agent's audio)."""
        return self._local_room().session

    def wait_connected(self, timeout: float | None = 10.0) -> JobHandle:
        """Until the agent joined the job's local room."""
        self.wait_assigned(timeout)
        if not self.local_room.joined.wait(timeout):
            raise TimeoutError(f"the agent of job {self.id} did not join within {timeout} s")
        return self

    def user_says(
        self, audio: str | UserAudio, *, timeout: float | None = 60.0, idle_timeout: float = 2.0
    ) -> Turn:
        """The user says ``audio`` (a file PyAV reads, or ``console.UserAudio``) once the job
        is assigned and the agent is done greeting, and waits until it answered and was quiet
        ``idle_timeout`` s. Returns the :class:`Turn`; ``TimeoutError`` after ``timeout`` s."""
        from ..console.feeder import UserAudio, load_audio

        clip = audio if isinstance(audio, UserAudio) else load_audio(audio)
        self.wait_assigned(timeout)  # a test may talk right after dispatch()
        local = self._local_room()
        return local.run(lambda check: local.session.say(clip, check, idle_timeout), timeout)

    def user_sends(
        self, text: str, *, timeout: float | None = 60.0, idle_timeout: float = 2.0
    ) -> Turn:
        """The user sends ``text`` as a chat message; like :meth:`user_says`."""
        self.wait_assigned(timeout)  # a test may talk right after dispatch()
        local = self._local_room()
        return local.run(lambda check: local.session.send(text, check, idle_timeout), timeout)

    def user_leaves(self) -> None:
        """The user hangs up (an agent connected with ``AutoDisconnect.ROOM_EMPTY`` ends)."""
        self.local_room.user_leaves()

    @property
    def transcript(self) -> list[tuple[str, str]]:
        """The conversation so far, ``(who, text)`` lines (``user`` / ``agent``)."""
        return list(self.session.lines) if self._local is not None else []

    def __repr__(self) -> str:
        return (
            f"JobHandle(id={self.id!r}, room={self.room!r}, outcome={self.outcome!r}, "
            f"status={proto.JobStatus.Name(self.status)}, error={self.error!r})"
        )


class LocalJobRoom:
    """The local room of one assigned job and the user in it, registered at a ``local://``
    URL; both are made on first use (a job that never joins costs no media objects)."""

    def __init__(
        self,
        server: DispatchServer,
        handle: JobHandle,
        answer: proto.AvailabilityResponse,
        attributes: dict[str, str],
    ) -> None:
        self._server = server
        self._handle = handle
        self._answer = answer
        self._attributes = attributes
        self._room: LocalRoom | None = None
        self._session: ConsoleSession | None = None
        self.url = register_local_room(lambda: self.room, key=f"{server.node_id}/{handle.id}")

    @property
    def room(self) -> LocalRoom:
        """The room (made now if it was not)."""
        if self._room is None:
            from ..console.session import ConsoleSession
            from .local_room import LocalRoom

            job = self._handle.job
            answer = self._answer
            identity = answer.participant_identity or f"agent-{job.id}"
            user = job.participant.identity if job.HasField("participant") else "user"
            room = LocalRoom(
                job.room.name,
                user_identity=user or "user",
                agent_identity=identity,
                agent_name=answer.participant_name,
                agent_metadata=answer.participant_metadata,
                agent_attributes=self._attributes,
                token_check=self._check_token,
            )
            self._room = room
            # made with the room, so it sees everything the agent publishes
            self._session = ConsoleSession(room, agent_running=lambda: not self._handle.ended)
        return self._room

    @property
    def session(self) -> ConsoleSession:
        """The user's side of the room."""
        self.room  # noqa: B018  (makes the session with the room)
        assert self._session is not None
        return self._session

    def _check_token(self, token: str) -> None:
        # what livekit-server checks before letting a participant in: signed with the
        # server's secret, a grant to join this very room
        from livekit import api

        from .. import rtc

        try:
            claims = api.TokenVerifier(self._server.api_key, self._server.api_secret).verify(token)
        except Exception as exc:
            raise rtc.ConnectError(f"local room {self.url}: invalid token ({exc})") from None
        video = claims.video
        if video is None or not video.room_join or video.room != self._handle.room:
            raise rtc.ConnectError(
                f"local room {self.url}: the token does not grant joining {self._handle.room!r}"
            )

    def run(self, step: Callable[[Callable[[], None]], T], timeout: float | None) -> T:
        """Run one of the session's blocking steps with a deadline; the job's end stops it
        early (the step's turn is returned as it is then)."""
        from ..console.session import Stopped

        deadline = None if timeout is None else time.monotonic() + timeout

        def check() -> None:
            if deadline is not None and time.monotonic() > deadline:
                raise Stopped("timeout")
            if self._handle.ended:
                raise Stopped("job ended")

        session = self.session
        before = len(session.turns)
        try:
            return step(check)
        except Stopped as stopped:
            if stopped.reason == "timeout":
                raise TimeoutError(
                    f"job {self._handle.id}: the user's turn was not over after {timeout} s"
                ) from None
            if len(session.turns) > before:
                return session.turns[-1]  # type: ignore[return-value]
            raise RuntimeError(f"job {self._handle.id} ended before the user's turn") from None

    def close(self) -> None:
        """Unregister the URL; close the user's side and the room."""
        unregister_local_room(self.url)
        if self._session is not None:
            self._session.close()
        if self._room is not None:
            self._room.close()


class _Conn:
    """One WebSocket from a worker, from the upgrade to its end."""

    def __init__(self, server: DispatchServer, ws: ServerWebSocket, peer: Any) -> None:
        self.server = server
        self.ws = ws
        self.peer = peer
        self.worker: RegisteredWorker | None = None
        self.availability: dict[str, gevent.event.AsyncResult] = {}

    def send(self, msg: proto.ServerMessage) -> None:
        self.ws.send(msg.SerializeToString(), OP_BINARY)

    def serve(self) -> None:
        server = self.server
        with gevent.Timeout(server.register_timeout, False):
            while self.worker is None:
                msg = self._recv()
                which = msg.WhichOneof("message") if msg is not None else None
                if which == "register":
                    self._register(msg.register)  # type: ignore[union-attr]
                elif which == "ping":
                    self._pong(msg.ping)  # type: ignore[union-attr]
                elif which is not None:
                    logger.warning("dispatch server: {} before register; closing", which)
                    return
        if self.worker is None:
            logger.warning(
                "dispatch server: no register within {} s; closing", server.register_timeout
            )
            return
        if server.drop_after_register:
            return  # closing the connection is the caller's job once serve() returns
        while True:
            msg = self._recv()
            if msg is not None:
                self._handle(msg)

    def _recv(self) -> proto.WorkerMessage | None:
        opcode, data = self.ws.recv()
        if opcode != OP_BINARY:
            logger.warning("dispatch server: dropped a non-binary frame")
            return None
        msg = proto.WorkerMessage()
        try:
            msg.ParseFromString(data)
        except Exception:
            logger.warning("dispatch server: dropped an undecodable worker frame")
            return None
        return msg

    def _register(self, req: proto.RegisterWorkerRequest) -> None:
        server = self.server
        worker = RegisteredWorker(_short_id("AW_"), req, self)
        self.worker = worker
        info = models.ServerInfo(
            edition=models.ServerInfo.Standard,
            version=server.server_version,
            protocol=17,  # as livekit-server 1.13.5 (a single node has no region)
            agent_protocol=1,
            node_id=server.node_id,
        )
        self.send(
            proto.ServerMessage(
                register=proto.RegisterWorkerResponse(worker_id=worker.id, server_info=info)
            )
        )
        server.registrations.append(req)
        server._workers[worker.id] = worker
        server._changes.notify()

    def _pong(self, ping: proto.WorkerPing) -> None:
        self.send(
            proto.ServerMessage(
                pong=proto.WorkerPong(
                    last_timestamp=ping.timestamp, timestamp=int(time.time() * 1000)
                )
            )
        )

    def _handle(self, msg: proto.WorkerMessage) -> None:
        server = self.server
        worker = self.worker
        assert worker is not None
        which = msg.WhichOneof("message")
        if which == "availability":
            waiter = self.availability.pop(msg.availability.job_id, None)
            if waiter is not None:
                # stamped on arrival: the dispatch greenlet may run a little later
                waiter.set((msg.availability, time.time()))
            else:
                logger.warning(
                    "dispatch server: availability for unknown job {}", msg.availability.job_id
                )
        elif which == "update_job":
            server._on_update_job(worker, msg.update_job)
        elif which == "update_worker":
            update = msg.update_worker
            if update.HasField("status"):
                worker.status = update.status
            worker.load = update.load
            worker.job_count = update.job_count
            worker.draining = update.draining
            worker.status_updates += 1
            server._changes.notify()
        elif which == "ping":
            self._pong(msg.ping)
        elif which == "simulate_job":
            server._simulate(worker, msg.simulate_job)
        elif which == "migrate_job":
            for job_id in msg.migrate_job.job_ids:
                server._reattach(worker, job_id)
        elif which == "register":
            logger.warning("dispatch server: worker {} registered twice", worker.id)

    def closed(self) -> None:
        for waiter in self.availability.values():
            waiter.set(None)  # the offer dies with the connection; the dispatch moves on
        self.availability.clear()
        if self.worker is not None:
            self.worker.connected = False


class DispatchServer:
    """A LiveKit agent-dispatch endpoint on 127.0.0.1 for tests (see module docstring).

    ``with DispatchServer() as server:`` then point a worker at ``server.url`` with
    ``server.api_key`` / ``server.api_secret``.
    """

    def __init__(
        self,
        api_key: str = "devkey",
        api_secret: str | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        register_timeout: float = 10.0,
        availability_timeout: float = 10.0,
        local_rooms: bool = True,
    ) -> None:
        self.api_key = api_key
        self.api_secret = api_secret or secrets.token_urlsafe(24)
        self.host = host
        self._port = port
        self.register_timeout = register_timeout
        self.availability_timeout = availability_timeout
        self.server_version = "syncagents-dispatch-double"
        self.node_id = _short_id("ND_")
        self.reject_auth = False
        self.answer_pings = True
        self.drop_after_register = False  # fault: accept a registration, then hang up at once
        self.local_rooms = local_rooms  # assignments carry a local:// room URL (module doc)
        self.registrations: list[proto.RegisterWorkerRequest] = []
        self.jobs: dict[str, JobHandle] = {}
        self.auth_failures = 0
        self._workers: dict[str, RegisteredWorker] = {}
        self._conns: set[_Conn] = set()
        self._server: StreamServer | None = None
        self._group = gevent.pool.Group()  # dispatch greenlets
        self._handlers = gevent.pool.Pool()  # one greenlet per connection
        self._changes = _Changes()

    # -- life cycle -------------------------------------------------------------------------
    def start(self) -> DispatchServer:
        """Listen (again: after :meth:`stop`, on the same port)."""
        if self._server is not None:
            return self
        server = StreamServer((self.host, self._port), self._on_connection, spawn=self._handlers)
        server.start()
        self._port = int(server.server_port)
        self._server = server
        return self

    def stop(self) -> None:
        """Stop listening and drop every connection (jobs and worker history are kept)."""
        server, self._server = self._server, None
        if server is not None:
            server.close()  # no new connections from here on
        self.drop_connections()
        self._handlers.join(timeout=2)
        self._handlers.kill(block=True, timeout=1)

    def close(self) -> None:
        """Stop, end the dispatches under way and close the jobs' local rooms."""
        self.stop()
        self._group.kill(block=True, timeout=2)
        for handle in list(self.jobs.values()):
            if handle._local is not None:
                handle._local.close()

    def __enter__(self) -> DispatchServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def port(self) -> int:
        """The port listened on (the one bound once started with ``port=0``)."""
        return self._port

    @property
    def url(self) -> str:
        """The WebSocket URL workers connect to, ``ws://host:port``."""
        return f"ws://{self.host}:{self._port}"

    # -- observation ------------------------------------------------------------------------
    @property
    def workers(self) -> list[RegisteredWorker]:
        """Every worker that registered, in order (disconnected ones have ``connected=False``)."""
        return list(self._workers.values())

    @property
    def connected_workers(self) -> list[RegisteredWorker]:
        """The registered workers still connected, in registration order."""
        return [w for w in self._workers.values() if w.connected]

    def wait_for_worker(
        self,
        predicate: Callable[[RegisteredWorker], bool] | None = None,
        timeout: float | None = 10.0,
    ) -> RegisteredWorker:
        """The first connected worker matching ``predicate`` (e.g. ``lambda w: w.status ==
        WS_FULL``), waiting for it."""

        def find() -> RegisteredWorker | None:
            for w in self._workers.values():
                if w.connected and (predicate is None or predicate(w)):
                    return w
            return None

        return self._changes.wait_until(find, timeout, "matching worker")

    def wait_for_job(
        self, predicate: Callable[[JobHandle], bool] | None = None, timeout: float | None = 10.0
    ) -> JobHandle:
        """The first job matching ``predicate`` (e.g. one a ``simulate_job`` created)."""

        def find() -> JobHandle | None:
            for job in self.jobs.values():
                if predicate is None or predicate(job):
                    return job
            return None

        return self._changes.wait_until(find, timeout, "matching job")

    # -- dispatching ------------------------------------------------------------------------
    def wait_until(
        self, predicate: Callable[[], T | None], timeout: float | None = 10.0, what: str = ""
    ) -> T:
        """Block until ``predicate()`` returns something other than ``None``/``False`` (checked
        after every change the double sees: registrations, updates, disconnections) and return
        it; ``TimeoutError`` naming ``what`` otherwise."""
        return self._changes.wait_until(predicate, timeout, what or "condition")

    def dispatch(
        self,
        room: str = "",
        metadata: str = "",
        agent_name: str = "",
        *,
        participant_identity: str | None = None,
        job_type: int | None = None,
        worker_timeout: float = 10.0,
    ) -> JobHandle:
        """Offer a new job for ``room`` to the workers registered as ``agent_name``; returns at
        once. Waits up to ``worker_timeout`` s for an available worker to show up."""
        if job_type is None:
            job_type = proto.JT_PUBLISHER if participant_identity else proto.JT_ROOM
        job = proto.Job(
            id=_short_id("AJ_"),
            dispatch_id=_short_id("AD_"),
            type=job_type,  # type: ignore[arg-type]
            agent_name=agent_name,
            metadata=metadata,
        )
        job.room.name = room or _short_id("room-")
        job.room.sid = _short_id("RM_")
        if participant_identity:
            job.participant.identity = participant_identity
            job.participant.sid = _short_id("PA_")
        handle = JobHandle(self, job)
        self.jobs[job.id] = handle
        self._group.spawn(self._run_dispatch, handle, worker_timeout, None)
        return handle

    def terminate(self, job_id: str) -> None:
        """Send ``termination`` for a job to the worker running it."""
        handle = self.jobs[job_id]
        worker = self._workers.get(handle.worker_id)
        if worker is None or not worker.connected:
            raise RuntimeError(f"job {job_id} has no connected worker")
        handle.terminated = True
        worker._conn.send(proto.ServerMessage(termination=proto.JobTermination(job_id=job_id)))
        self._changes.notify()

    def _select(self, job: proto.Job, attempted: set[str]) -> RegisteredWorker | None:
        # agentservice.go JobRequest: available workers of the job's name/namespace/type; a
        # worker that already runs jobs and has the highest load wins (pack, don't spread)
        selected: RegisteredWorker | None = None
        max_load = 0.0
        for w in self._workers.values():
            if (
                not w.connected
                or w.id in attempted
                or w.agent_name != job.agent_name
                or w.namespace != job.namespace
                or w.job_type != job.type
                or w.status != proto.WS_AVAILABLE
            ):
                continue
            if w.running_jobs and w.load > max_load:
                max_load = w.load
                selected = w
            elif selected is None:
                selected = w
        return selected

    def _run_dispatch(
        self, handle: JobHandle, worker_timeout: float, only: RegisteredWorker | None
    ) -> None:
        attempted: set[str] = set()
        deadline = time.monotonic() + worker_timeout
        while True:
            worker = only if only is not None and only.id not in attempted else None
            if only is None:
                worker = self._select(handle.job, attempted)
            if worker is None:
                remaining = deadline - time.monotonic()
                if not attempted and only is None and remaining > 0:
                    self._changes.wait(remaining)
                    continue
                handle.outcome = "rejected" if attempted else "no_worker"
                self._changes.notify()
                return
            attempted.add(worker.id)
            if self._offer(worker, handle):
                return

    def _offer(self, worker: RegisteredWorker, handle: JobHandle) -> bool:
        """Offer the job to one worker; False when it declined (try the next one)."""
        conn = worker._conn
        job = proto.Job()
        job.CopyFrom(handle.job)
        now_ns = time.time_ns()
        job.state.worker_id = worker.id
        job.state.status = proto.JS_RUNNING  # livekit-server offers the job as running
        job.state.started_at = now_ns
        job.state.updated_at = now_ns
        waiter = gevent.event.AsyncResult()
        conn.availability[job.id] = waiter
        handle.worker_id = worker.id
        handle.offered_to.append(worker.id)
        try:
            handle.availability_sent_at = time.time()
            conn.send(proto.ServerMessage(availability=proto.AvailabilityRequest(job=job)))
            answered = waiter.get(timeout=self.availability_timeout)
        except gevent.Timeout:
            handle.outcome = "availability_timeout"
            self._changes.notify()
            return True
        except OSError:
            answered = None
        finally:
            conn.availability.pop(job.id, None)
        if answered is None:
            return False  # the connection went away with the offer
        answer, handle.answered_at = answered
        handle.availability = answer
        if answer.terminate:
            handle.outcome = "terminated"
            handle.status = proto.JS_SUCCESS
            self._changes.notify()
            return True
        if not answer.available:
            self._changes.notify()
            return False
        attributes = dict(answer.participant_attributes)
        attributes[AGENT_NAME_ATTRIBUTE] = worker.agent_name
        handle.token = self._job_token(job.room.name, answer, attributes, worker.permissions)
        job.state.participant_identity = answer.participant_identity
        job.state.status = proto.JS_RUNNING
        worker.running_jobs.add(job.id)
        assignment = proto.JobAssignment(job=job, token=handle.token)
        if self.local_rooms:
            if handle._local is None:  # a job offered again keeps its room
                handle._local = LocalJobRoom(self, handle, answer, attributes)
            handle.url = assignment.url = handle._local.url
        handle.outcome = "assigned"
        handle.assigned_at = time.time()
        try:
            conn.send(proto.ServerMessage(assignment=assignment))
        except OSError:
            pass  # the worker is gone; its job state says what it last reported
        self._changes.notify()
        return True

    def _job_token(
        self,
        room: str,
        answer: proto.AvailabilityResponse,
        attributes: dict[str, str],
        permissions: models.ParticipantPermission,
    ) -> str:
        # the claims livekit-server 1.13.5 puts in a job token (protocol's BuildAgentToken),
        # checked field by field against the real server by tests/integration: the registered
        # permissions, kind agent, identity claim, one hour
        from .._ws import sign_jwt

        identity = answer.participant_identity or f"agent-{answer.job_id}"
        now = int(time.time())
        video: dict[str, Any] = {
            "roomJoin": True,
            "room": room,
            "canPublish": permissions.can_publish,
            "canSubscribe": permissions.can_subscribe,
            "canPublishData": permissions.can_publish_data,
            "canUpdateOwnMetadata": permissions.can_update_metadata,
            "agent": True,
            "canSubscribeMetrics": permissions.can_subscribe_metrics,
        }
        if permissions.hidden:
            video["hidden"] = True
        claims: dict[str, Any] = {
            "iss": self.api_key,
            "sub": identity,
            "exp": now + 3600,
            "nbf": now,
            "iat": now,
            "identity": identity,
            "name": answer.participant_name,
            "kind": "agent",
            "video": video,
            "metadata": answer.participant_metadata,
            "attributes": attributes,
        }
        return sign_jwt(claims, self.api_secret)

    def _simulate(self, worker: RegisteredWorker, req: proto.SimulateJobRequest) -> None:
        job = proto.Job(
            id=_short_id("AJ_"),
            type=proto.JT_PUBLISHER if req.HasField("participant") else proto.JT_ROOM,
            agent_name=worker.agent_name,
            namespace=worker.namespace,
        )
        job.room.CopyFrom(req.room)
        if req.HasField("participant"):
            job.participant.CopyFrom(req.participant)
        handle = JobHandle(self, job)
        self.jobs[job.id] = handle
        self._changes.notify()
        self._group.spawn(self._run_dispatch, handle, 0.0, worker)

    def _on_update_job(self, worker: RegisteredWorker, update: proto.UpdateJobStatus) -> None:
        handle = self.jobs.get(update.job_id)
        if handle is None:
            logger.debug("dispatch server: update for unknown job {}", update.job_id)
            return
        self._reattach(worker, update.job_id)
        copy = proto.UpdateJobStatus()
        copy.CopyFrom(update)
        handle.updates.append(copy)
        handle.status = update.status
        handle.error = update.error
        now = time.time()
        if update.status == proto.JS_RUNNING and not handle.running_at:
            handle.running_at = now
        if update.status in (proto.JS_SUCCESS, proto.JS_FAILED):
            handle.ended_at = now
            worker.running_jobs.discard(update.job_id)
        self._changes.notify()

    def _reattach(self, worker: RegisteredWorker, job_id: str) -> None:
        handle = self.jobs.get(job_id)
        if handle is None or handle.worker_id == worker.id:
            return
        previous = self._workers.get(handle.worker_id)
        if previous is not None:
            previous.running_jobs.discard(job_id)
        handle.worker_id = worker.id
        if handle.status not in (proto.JS_SUCCESS, proto.JS_FAILED):
            worker.running_jobs.add(job_id)

    # -- fault injection --------------------------------------------------------------------
    def drop_connections(self) -> None:
        """Cut every worker connection without a close frame (the server keeps listening)."""
        for conn in list(self._conns):
            conn.ws.abort()

    def send_raw(self, data: bytes, *, text: bool = False, worker_id: str | None = None) -> None:
        """Send a raw frame (e.g. not protobuf) to one worker, or to every connected one."""
        for conn in list(self._conns):
            if conn.worker is None or (worker_id is not None and conn.worker.id != worker_id):
                continue
            conn.ws.send(data, OP_TEXT if text else OP_BINARY)

    # -- connections ------------------------------------------------------------------------
    def _authorized(self, request: Any) -> bool:
        if self.reject_auth:
            return False
        header = request.headers.get("authorization", "")
        token = header[7:].strip() if header.lower().startswith("bearer ") else ""
        token = token or (request.query.get("access_token") or [""])[0]
        if not token:
            return False
        from livekit import api

        try:
            claims = api.TokenVerifier(self.api_key, self.api_secret).verify(token)
        except Exception:
            return False
        return bool(claims.video is not None and claims.video.agent)

    def _on_connection(self, sock: socket.socket, address: Any) -> None:
        conn: _Conn | None = None
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            rfile = sock.makefile("rb")
            with gevent.Timeout(10, False):
                request = read_http_request(rfile)  # type: ignore[arg-type]
            if request is None:
                return
            if request.path.rstrip("/") != "/agent" and not request.path.rstrip("/").endswith(
                "/agent"
            ):
                sock.sendall(http_response(404, "Not Found", b"not found\n"))
                return
            if not request.is_websocket_upgrade():
                sock.sendall(http_response(400, "Bad Request", b"websocket upgrade expected\n"))
                return
            if not self._authorized(request):
                self.auth_failures += 1
                self._changes.notify()
                sock.sendall(http_response(401, "Unauthorized", b"permission denied\n"))
                return
            sock.sendall(upgrade_response(request.headers["sec-websocket-key"]))
            ws = ServerWebSocket(sock, rfile, answer_ping=lambda: self.answer_pings)  # type: ignore[arg-type]
            conn = _Conn(self, ws, address)
            self._conns.add(conn)
            conn.serve()
        except (ConnectionClosed, OSError):
            pass
        except Exception:
            logger.opt(exception=True).error("dispatch server: connection handler failed")
        finally:
            if conn is not None:
                self._conns.discard(conn)
                conn.closed()
                conn.ws.abort()
                self._changes.notify()
            else:
                try:
                    sock.close()
                except OSError:
                    pass
