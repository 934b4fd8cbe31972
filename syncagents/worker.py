"""The agent worker: registers with LiveKit, answers job offers, runs each job in a greenlet group.

One process, one gevent hub. The connection greenlet owns the WebSocket reads and handles
server messages in batches: every message one socket read brought in, in order. Availability
answers for the plain "accept everything" case are made inline (no greenlet switch); a
``request_fnc`` runs in its own greenlet, and every job is driven by :class:`syncagents.job.Job`
in a driver greenlet. Sends are queued and the connection's writer greenlet writes what was
queued in one go: a batch's answers, the status updates of the jobs it started, together.
After each batch the connection greenlet lets the hub run the jobs it started before it reads
on. Jobs survive reconnects: their state is re-sent after re-registering, and final updates
that could not be sent wait for the next connection.
"""

from __future__ import annotations

import collections
import enum
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import gevent
import gevent.event
import gevent.pool
from gevent import Greenlet
from livekit.protocol import agent as proto
from livekit.protocol import models
from loguru import logger

from ._ws import AgentConnection, CredentialsRejected, ProtocolViolation, mint_worker_token
from .job import Job, JobAcceptArguments, JobContext, JobRequest
from .log import redact
from .runtime import bind_job_id
from .version import __version__

__all__ = [
    "ConfigurationError",
    "ConnectionFailedError",
    "CpuLoad",
    "CredentialsRejectedError",
    "JobType",
    "Worker",
    "WorkerError",
    "WorkerOptions",
    "WorkerPermissions",
]

MAX_ERROR_BYTES = 64 * 1024  # update_job error text; a 17 MiB one broke the server's frame limit
DRAIN_END_BUDGET = 1.0  # seconds jobs cut off by a drain timeout get to end
STABLE_REGISTRATION = 5.0  # a connection dropped sooner than this counts as a failed attempt
RUNNING_WRITE_TIMEOUT = 10.0  # a job's JS_RUNNING not written by then: its entrypoint runs anyway


class JobType(enum.IntEnum):
    """Which jobs the worker takes: one per room, or one per publisher (participant)."""

    ROOM = proto.JT_ROOM
    PUBLISHER = proto.JT_PUBLISHER
    PARTICIPANT = proto.JT_PARTICIPANT


@dataclass
class WorkerPermissions:
    """What the agent's participant may do in the room (the server puts it in the job token)."""

    can_publish: bool = True
    can_subscribe: bool = True
    can_publish_data: bool = True
    can_update_metadata: bool = True
    can_publish_sources: list[int] = field(default_factory=list)
    hidden: bool = False

    def to_proto(self) -> models.ParticipantPermission:
        """These permissions as the protobuf ``ParticipantPermission`` (with ``agent=True``)."""
        return models.ParticipantPermission(
            can_publish=self.can_publish,
            can_subscribe=self.can_subscribe,
            can_publish_data=self.can_publish_data,
            can_update_metadata=self.can_update_metadata,
            can_publish_sources=list(self.can_publish_sources),  # type: ignore[arg-type]
            hidden=self.hidden,
            agent=True,
        )


class CpuLoad:
    """This process's CPU use as a fraction of one core, averaged over the last ``window``
    seconds (the default ``load_fnc``). Reads are cheap: at most one sample every 0.1 s."""

    def __init__(self, window: float = 5.0) -> None:
        import psutil

        self._proc = psutil.Process()
        self._window = window
        self._samples: collections.deque[tuple[float, float]] = collections.deque()
        self._value = 0.0
        self._sample()

    def _sample(self) -> None:
        t = self._proc.cpu_times()
        self._samples.append((time.monotonic(), t.user + t.system))

    def __call__(self) -> float:
        now = time.monotonic()
        if now - self._samples[-1][0] >= 0.1:
            self._sample()
            while len(self._samples) > 2 and now - self._samples[1][0] >= self._window:
                self._samples.popleft()
        (t0, c0), (t1, c1) = self._samples[0], self._samples[-1]
        # start-up (imports, prewarm) burns CPU: report nothing until a second of history
        # exists, so a fresh worker does not announce itself as full
        if t1 - t0 >= 1.0:
            self._value = min(max((c1 - c0) / (t1 - t0), 0.0), 1.0)
        return self._value


def _env(name: str) -> Callable[[], str]:
    return lambda: os.environ.get(name, "")


@dataclass
class WorkerOptions:
    """How a worker runs (API.md). ``ws_url``/``api_key``/``api_secret`` default to
    ``$LIVEKIT_URL``/``$LIVEKIT_API_KEY``/``$LIVEKIT_API_SECRET`` at construction time."""

    entrypoint_fnc: Callable[[JobContext], Any] | None = None
    request_fnc: Callable[[JobRequest], Any] | None = None
    prewarm_fnc: Callable[[], Any] | None = None
    load_fnc: Callable[[], float] = field(default_factory=CpuLoad, repr=False)
    load_threshold: float = 0.8
    agent_name: str = ""
    worker_type: JobType = JobType.ROOM
    permissions: WorkerPermissions = field(default_factory=WorkerPermissions)
    max_retry: int = 16  # connection retries after the first attempt; retry n waits min(2n, 10) s
    ws_url: str = field(default_factory=_env("LIVEKIT_URL"))
    api_key: str = field(default_factory=_env("LIVEKIT_API_KEY"))
    api_secret: str = field(default_factory=_env("LIVEKIT_API_SECRET"), repr=False)
    host: str = "127.0.0.1"
    port: int = 8081  # health server; 0 disables it
    drain_timeout: float = 1800

    def __post_init__(self) -> None:
        if self.entrypoint_fnc is None and self.request_fnc is None:
            raise ValueError("WorkerOptions needs an entrypoint_fnc or a request_fnc")


class WorkerError(Exception):
    """The worker cannot go on; the message is one clear line with no secret in it."""


class CredentialsRejectedError(WorkerError):
    """The server rejected the API key/secret (HTTP 401/403 on the upgrade); never retried."""


class ConnectionFailedError(WorkerError):
    """The server stayed unreachable for ``max_retry`` retries after the first attempt."""


class ConfigurationError(WorkerError):
    """The options are incomplete: the URL, API key or API secret is missing."""


@dataclass
class _Pending:
    """An accepted job waiting for the server's assignment."""

    args: JobAcceptArguments
    deadline: float


@dataclass
class _ActiveJob:
    ctx: JobContext
    driver: Greenlet
    status: int = proto.JS_PENDING


StatusListener = Callable[[dict[str, Any]], None]


class Worker:
    """Runs jobs for one LiveKit server. ``run()`` blocks until the worker is closed."""

    # protocol timings (API.md / livekit-server); instance attributes may override them
    register_timeout = 10.0
    status_interval = 2.5
    ping_interval = 10.0
    pong_timeout = 10.0
    request_timeout = 10.0
    assignment_timeout = 10.0
    close_timeout = 10.0

    def __init__(self, opts: WorkerOptions, *, serve_health: bool = True) -> None:
        self.opts = opts
        self.userdata: Any = None
        self.id = ""
        self._serve_health = serve_health and bool(opts.port)
        self._health: Any = None
        self._group = gevent.pool.Group()
        self._jobs: dict[str, _ActiveJob] = {}
        self._pending: dict[str, _Pending] = {}
        self._unsent_updates: dict[str, proto.WorkerMessage] = {}
        self._outbox: list[proto.WorkerMessage] = []  # sent once registered (simulate_job)
        self._conn: AgentConnection | None = None
        self._registered = gevent.event.Event()
        self._closing = gevent.event.Event()
        self._stopped = gevent.event.Event()
        self._jobs_changed = gevent.event.Event()
        self._running = False
        self._draining = False
        self._fatal: WorkerError | None = None
        self._load = 0.0
        self._status_listeners: list[StatusListener] = []

    # -- public state -----------------------------------------------------------------------
    @property
    def active_jobs(self) -> list[JobContext]:
        """The ``JobContext`` of every job the worker is running."""
        return [job.ctx for job in self._jobs.values()]

    @property
    def registered(self) -> bool:
        """Whether the worker is registered with the server right now."""
        return self._registered.is_set()

    @property
    def draining(self) -> bool:
        """Whether a drain started: no new jobs are taken."""
        return self._draining

    @property
    def load(self) -> float:
        """The load last reported to the server."""
        return self._load

    def health_info(self) -> dict[str, Any]:
        """The health endpoint's state of the worker.

        ``registered``, ``id``, ``agent_name``, ``active_jobs`` (a count), ``load`` and
        ``draining``.
        """
        return {
            "registered": self.registered,
            "id": self.id,
            "agent_name": self.opts.agent_name,
            "active_jobs": len(self._jobs),
            "load": self._load,
            "draining": self._draining,
        }

    def add_status_listener(self, fn: StatusListener) -> None:
        """``fn(health_info())`` after every status change and ``update_worker``."""
        self._status_listeners.append(fn)

    def wait_for_registration(self, timeout: float | None = None) -> str:
        """Block until registered; returns the worker id. ``TimeoutError`` otherwise; the
        worker's fatal error if it gave up."""
        gevent.wait([self._registered, self._stopped], timeout=timeout, count=1)
        if self._fatal is not None:
            raise self._fatal
        if not self._registered.is_set():
            raise TimeoutError(f"worker did not register within {timeout} s")
        return self.id

    # -- life cycle -------------------------------------------------------------------------
    def run(self) -> None:
        """Register, serve jobs and reconnect as needed until :meth:`close` (or a drain) ends
        it. Raises :class:`WorkerError` when credentials are rejected, the server stays
        unreachable for ``max_retry`` attempts, or the options are incomplete."""
        if self._running:
            raise RuntimeError("worker is already running")
        self._running = True
        try:
            self._check_options()
            if self.opts.prewarm_fnc is not None:
                self.userdata = self.opts.prewarm_fnc()
            if self._serve_health:
                self._start_health()
            if not self._closing.is_set():
                self._group.spawn(self._connection_loop)
                self._closing.wait()
            self._teardown()
        finally:
            self._stopped.set()
        if self._fatal is not None:
            raise self._fatal

    def close(self) -> None:
        """Stop now: running jobs are ended (``JS_FAILED`` "worker closed"), the connection
        closed. Blocks until :meth:`run` has returned (when it runs)."""
        self._closing.set()
        if self._running and not self._stopped.is_set():
            self._stopped.wait(timeout=self.close_timeout + 5)

    def drain(self, timeout: float | None = None) -> None:
        """Take no new jobs, let running ones finish (at most ``timeout`` s, default
        ``drain_timeout``), cut off the rest with ``JS_FAILED`` "drain timeout", then close."""
        timeout = self.opts.drain_timeout if timeout is None else timeout
        if not self._draining:
            self._draining = True
            logger.info("draining: {} job(s) running", len(self._jobs))
            self._send_worker_status()
        deadline = time.monotonic() + max(timeout, 0.0)
        while (self._jobs or self._pending) and not self._closing.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            self._jobs_changed.wait(remaining)
            self._jobs_changed.clear()
        if self._jobs:
            logger.warning("drain timeout: cutting off {} job(s)", len(self._jobs))
            # API.md: exit within drain timeout + 2 s whatever the jobs' callbacks do
            self._end_jobs("drain timeout", "drain timeout", budget=DRAIN_END_BUDGET)
        self.close()

    def simulate_job(self, room: str, participant_identity: str | None = None) -> None:
        """Ask the server to assign this worker a job for ``room`` (the CLI's ``connect``)."""
        req = proto.SimulateJobRequest(
            type=proto.JT_PUBLISHER if participant_identity else proto.JT_ROOM,
            room=models.Room(sid=f"SRM_{uuid.uuid4().hex[:12]}", name=room),
        )
        if participant_identity:
            req.participant.CopyFrom(
                models.ParticipantInfo(
                    sid=f"SPA_{uuid.uuid4().hex[:12]}", identity=participant_identity
                )
            )
        msg = proto.WorkerMessage(simulate_job=req)
        if not (self.registered and self._send(msg)):
            self._outbox.append(msg)

    def _check_options(self) -> None:
        missing = [
            what
            for what, value in (
                ("LiveKit URL (--url / LIVEKIT_URL)", self.opts.ws_url),
                ("API key (--api-key / LIVEKIT_API_KEY)", self.opts.api_key),
                ("API secret (--api-secret / LIVEKIT_API_SECRET)", self.opts.api_secret),
            )
            if not value
        ]
        if missing:
            raise ConfigurationError("missing " + ", ".join(missing))

    def _start_health(self) -> None:
        from .health import HealthServer

        try:
            self._health = HealthServer(self.health_info, self.opts.host, self.opts.port).start()
        except OSError as exc:
            # the worker is still useful without its probe endpoint
            logger.error(
                "health server could not listen on {}:{}: {}", self.opts.host, self.opts.port, exc
            )

    def _fail(self, error: WorkerError) -> None:
        self._fatal = error
        self._closing.set()

    def _teardown(self) -> None:
        if self._jobs:
            self._end_jobs("worker closed", "worker closed")
        conn, self._conn = self._conn, None
        self._registered.clear()
        if conn is not None:
            conn.close()
        if self._health is not None:
            self._health.stop()
            self._health = None
        self._group.kill(block=True, timeout=2)

    def _end_jobs(self, reason: str, error: str, budget: float | None = None) -> None:
        jobs = list(self._jobs.values())
        for job in jobs:
            Job.of(job.ctx).request_end(reason, error, budget)
        wait = self.close_timeout if budget is None else budget + 0.5
        gevent.joinall([job.driver for job in jobs], timeout=wait)

    # -- connection -------------------------------------------------------------------------
    def _connection_loop(self) -> None:
        url = self.opts.ws_url
        secrets = (self.opts.api_secret,)
        retry = 0
        while not self._closing.is_set():
            try:
                conn = self._connect_and_register()
            except CredentialsRejected as exc:
                self._fail(CredentialsRejectedError(redact(str(exc), *secrets)))
                return
            except Exception as exc:  # refused, timeout, bad status, protocol violation
                if self._closing.is_set():
                    return
                reason = redact(_describe(exc), *secrets)
                if retry >= self.opts.max_retry:
                    attempts = retry + 1  # max_retry counts retries after the first attempt
                    message = (
                        f"could not connect to LiveKit at {url}: {reason} (gave up after "
                        f"{attempts} attempt{'s' if attempts > 1 else ''})"
                    )
                    self._fail(ConnectionFailedError(redact(message, *secrets)))
                    return
                retry += 1
                delay = retry_delay(retry)
                logger.warning(
                    "could not connect to {}: {}; retry {}/{} in {} s",
                    url,
                    reason,
                    retry,
                    self.opts.max_retry,
                    delay,
                )
                self._closing.wait(delay)
                continue
            registered_at = time.monotonic()
            try:
                self._serve(conn)
            except Exception as exc:
                if not self._closing.is_set():
                    logger.warning("lost the connection to {}: {}", url, _describe(exc))
            finally:
                self._registered.clear()
                if self._conn is conn:
                    self._conn = None
                conn.abort()
                self._notify_status()
            if not self._closing.is_set():
                # A registration that lasted reconnects at once; one that a server accepted
                # and dropped right away counts as a failed attempt, so a server that does
                # that forever gets the backoff, not a reconnection storm.
                if time.monotonic() - registered_at >= STABLE_REGISTRATION:
                    retry = 0
                    logger.info("reconnecting to {}", url)
                else:
                    retry += 1
                    delay = retry_delay(retry)
                    logger.warning("the connection to {} dropped at once; retrying in {} s",
                                   url, delay)
                    self._closing.wait(delay)

    def _connect_and_register(self) -> AgentConnection:
        token = mint_worker_token(self.opts.api_key, self.opts.api_secret)
        conn = AgentConnection.open(
            self.opts.ws_url, token, timeout=self.register_timeout, on_unsent=self._not_sent_all
        )
        try:
            register = proto.RegisterWorkerRequest(
                type=int(self.opts.worker_type),  # type: ignore[arg-type]
                agent_name=self.opts.agent_name,
                version=__version__,
                allowed_permissions=self.opts.permissions.to_proto(),
            )
            conn.send(proto.WorkerMessage(register=register))
            with gevent.Timeout(
                self.register_timeout,
                TimeoutError(f"no register response within {self.register_timeout:.0f} s"),
            ):
                msg = None
                while msg is None:
                    msg = conn.recv()
            if msg.WhichOneof("message") != "register":
                raise ProtocolViolation(
                    f"expected a register response first, got {msg.WhichOneof('message')}"
                )
            conn.settimeout(None)
        except BaseException:
            conn.abort()
            raise
        self.id = msg.register.worker_id
        self._conn = conn
        self._registered.set()
        info = msg.register.server_info
        logger.info(
            "registered worker {} (agent_name={!r}, url={}, server {} {})",
            self.id,
            self.opts.agent_name,
            self.opts.ws_url,
            info.version or "?",
            info.region or "",
        )
        self._send_worker_status()
        self._resend_job_states()
        outbox, self._outbox = self._outbox, []
        for out in outbox:
            self._send(out)
        return conn

    def _serve(self, conn: AgentConnection) -> None:
        pinger = self._group.spawn(self._ping_loop, conn)
        status = self._group.spawn(self._status_loop)
        try:
            while True:
                for msg in conn.recv_batch():
                    self._handle(msg)
                # A read that finds data does not give the hub up, so reading on would let a
                # burst of messages hold it for as long as the burst lasts: the writer and the
                # jobs this batch started would wait for the end of it. One switch per batch
                # (not per message) lets them, and every other greenlet, run first.
                gevent.sleep(0)
        finally:
            pinger.kill(block=False)
            status.kill(block=False)

    def _ping_loop(self, conn: AgentConnection) -> None:
        while True:
            gevent.sleep(self.ping_interval)  # pacing, not synchronisation
            conn.pong_received.clear()
            try:
                conn.ping()
            except Exception:
                conn.abort()
                return
            if not conn.pong_received.wait(self.pong_timeout):
                logger.warning(
                    "no pong from {} within {:.0f} s; reconnecting", conn.url, self.pong_timeout
                )
                conn.abort()
                return

    def _status_loop(self) -> None:
        while True:
            gevent.sleep(self.status_interval)  # pacing, not synchronisation
            self._send_worker_status()
            now = time.monotonic()
            for job_id, pending in list(self._pending.items()):
                if pending.deadline < now:
                    del self._pending[job_id]
                    self._jobs_changed.set()
                    logger.warning("no assignment came for accepted job {}; dropped", job_id)

    def _send(self, msg: proto.WorkerMessage) -> bool:
        """Queue ``msg`` on the connection; False when there is none. What is never sent is
        kept for the next connection or undone (:meth:`_not_sent`)."""
        conn = self._conn
        if conn is not None:
            try:
                conn.send(msg)
                return True
            except ConnectionError:
                pass  # closed: the reading greenlet is about to see it
        self._not_sent(msg)
        return False

    def _not_sent_all(self, msgs: list[proto.WorkerMessage]) -> None:
        for msg in msgs:
            self._not_sent(msg)

    def _not_sent(self, msg: proto.WorkerMessage) -> None:
        which = msg.WhichOneof("message")
        if which == "availability" and msg.availability.available:
            # the server forgot the offer with the connection: no assignment will come
            if self._pending.pop(msg.availability.job_id, None) is not None:
                self._jobs_changed.set()
        elif which == "update_job" and msg.update_job.status in (proto.JS_SUCCESS, proto.JS_FAILED):
            self._unsent_updates[msg.update_job.job_id] = msg  # sent after the next registration

    def _notify_status(self) -> None:
        if not self._status_listeners:
            return
        info = self.health_info()
        for fn in list(self._status_listeners):
            try:
                fn(info)
            except Exception:
                logger.opt(exception=True).warning("status listener failed")

    def _current_load(self) -> float:
        try:
            self._load = float(self.opts.load_fnc())
        except Exception:
            logger.opt(exception=True).warning("load_fnc failed; keeping the last load")
        return self._load

    def _send_worker_status(self) -> None:
        load = self._current_load()
        full = self._draining or load >= self.opts.load_threshold
        update = proto.UpdateWorkerStatus(
            status=proto.WS_FULL if full else proto.WS_AVAILABLE,
            load=load,
            job_count=len(self._jobs),
            draining=self._draining,
        )
        self._send(proto.WorkerMessage(update_worker=update))
        self._notify_status()

    def _send_job_update(self, job_id: str, status: int, error: str = "") -> None:
        if len(error.encode()) > MAX_ERROR_BYTES:  # the server drops oversized frames
            error = error.encode()[: MAX_ERROR_BYTES - 16].decode("utf-8", "ignore") + " …(cut)"
        msg = proto.WorkerMessage(
            update_job=proto.UpdateJobStatus(job_id=job_id, status=status, error=error)  # type: ignore[arg-type]
        )
        self._send(msg)  # a final status that cannot be sent now waits for the next connection

    def _resend_job_states(self) -> None:
        for job_id, job in list(self._jobs.items()):
            if job.status == proto.JS_RUNNING:
                self._send_job_update(job_id, proto.JS_RUNNING)
        unsent, self._unsent_updates = self._unsent_updates, {}
        for msg in unsent.values():
            self._send(msg)  # kept again if it cannot be sent

    # -- server messages --------------------------------------------------------------------
    def _handle(self, msg: proto.ServerMessage) -> None:
        which = msg.WhichOneof("message")
        if which == "availability":
            self._on_availability(msg.availability)
        elif which == "assignment":
            self._on_assignment(msg.assignment)
        elif which == "termination":
            self._on_termination(msg.termination.job_id)
        elif which == "pong":
            pass
        else:
            logger.debug("ignored server message {}", which)

    def _on_availability(self, req: proto.AvailabilityRequest) -> None:
        job = req.job
        if not req.HasField("job") or not job.id:
            # nothing to answer to (an answer needs the job id): a job with no id would run
            # as job "" and every update about it would be meaningless to the server
            logger.warning("ignored an availability request without a job id")
            return
        if job.id in self._jobs or job.id in self._pending:
            # already ours: taking it again would make the server issue a second token
            logger.warning("declined job {}: already running here", job.id)
            self._send_availability(job.id, available=False)
            return
        if self._draining or self._closing.is_set():
            self._send_availability(job.id, available=False)
            return
        load = self._current_load()
        if load >= self.opts.load_threshold:
            logger.info(
                "declined job {}: load {:.2f} >= threshold {:.2f}",
                job.id,
                load,
                self.opts.load_threshold,
            )
            self._send_availability(job.id, available=False)
            return
        request = JobRequest(job, self._answer)
        if self.opts.request_fnc is None:
            request.accept()  # inline: the common case answers without a greenlet switch
            return
        g = Greenlet(self._run_request_fnc, request)
        bind_job_id(g, job.id)
        self._group.start(g)

    def _run_request_fnc(self, request: JobRequest) -> None:
        assert self.opts.request_fnc is not None
        try:
            with gevent.Timeout(self.request_timeout):
                self.opts.request_fnc(request)
        except gevent.Timeout:
            if not request.answered:
                logger.warning(
                    "request_fnc did not answer job {} within {:.0f} s; rejecting it",
                    request.id,
                    self.request_timeout,
                )
        except Exception:
            if not request.answered:
                logger.opt(exception=True).error(
                    "request_fnc raised for job {}; rejecting it", request.id
                )
            else:
                logger.opt(exception=True).error(
                    "request_fnc raised after answering job {}", request.id
                )
        if not request.answered:
            logger.info("request_fnc returned without answering job {}; rejecting it", request.id)
            request.reject()

    def _answer(
        self, request: JobRequest, args: JobAcceptArguments | None, terminate: bool
    ) -> None:
        job_id = request.id
        if args is None:
            self._send_availability(job_id, available=False, terminate=terminate)
            return
        if args.entrypoint is None:
            if self.opts.entrypoint_fnc is None:
                raise ValueError(
                    "accept() needs an entrypoint when WorkerOptions.entrypoint_fnc is not set"
                )
            args.entrypoint = self.opts.entrypoint_fnc
        resp = proto.AvailabilityResponse(
            job_id=job_id,
            available=True,
            participant_identity=args.identity,
            participant_name=args.name,
            participant_metadata=args.metadata,
        )
        resp.participant_attributes.update(args.attributes)
        self._pending[job_id] = _Pending(args, time.monotonic() + self.assignment_timeout)
        self._send(proto.WorkerMessage(availability=resp))  # not sent: no longer pending

    def _send_availability(self, job_id: str, *, available: bool, terminate: bool = False) -> None:
        resp = proto.AvailabilityResponse(job_id=job_id, available=available, terminate=terminate)
        self._send(proto.WorkerMessage(availability=resp))

    def _on_assignment(self, assignment: proto.JobAssignment) -> None:
        job = assignment.job
        pending = self._pending.pop(job.id, None)
        if pending is None:
            logger.warning("assignment for unknown job {} ignored", job.id)
            return
        if job.id in self._jobs:
            logger.warning("duplicate assignment for job {} ignored", job.id)
            return
        url = assignment.url if assignment.HasField("url") and assignment.url else self.opts.ws_url
        ctx = JobContext(
            job,
            url=url,
            token=assignment.token,
            userdata=self.userdata,
            worker_id=self.id,
            accept_arguments=pending.args,
            api_key=self.opts.api_key,
            api_secret=self.opts.api_secret,
        )
        assert pending.args.entrypoint is not None
        driver = Greenlet(self._drive_job, ctx, pending.args.entrypoint)
        bind_job_id(driver, job.id)
        self._jobs[job.id] = _ActiveJob(ctx, driver)
        self._group.start(driver)
        # job_id as a keyword: in the record's extra like bind() puts it, without making a
        # logger per job (a third of a filtered call's cost)
        logger.info("job {} assigned (room {!r})", job.id, job.room.name, job_id=job.id)

    def _drive_job(self, ctx: JobContext, entrypoint: Callable[[JobContext], Any]) -> None:
        job_id = ctx.job_id
        active = self._jobs[job_id]
        # JS_RUNNING as the job starts (livekit-agents reports it once the job is launched),
        # queued: the jobs starting together share one write. The writer was woken by the
        # first of them, before any of their entrypoint greenlets was spawned, so it writes
        # before they run.
        active.status = proto.JS_RUNNING
        self._send_job_update(job_id, proto.JS_RUNNING)
        conn = self._conn
        update = conn.queued if conn is not None else 0

        def running() -> None:
            if conn is not None:
                # Not written yet only when the socket is backed up: wait, as a direct send
                # would have. An entrypoint that then holds the hub for good (a C call that
                # never returns) must not keep the update in the queue.
                conn.wait_written(update, RUNNING_WRITE_TIMEOUT)

        try:
            result = Job.of(ctx).run(entrypoint, on_running=running)
        finally:
            self._jobs.pop(job_id, None)
            self._jobs_changed.set()
        status = proto.JS_FAILED if result.failed else proto.JS_SUCCESS
        self._send_job_update(job_id, status, result.error)
        logger.info(
            "job {} ended ({}): {}{}",
            job_id,
            proto.JobStatus.Name(status),
            result.reason,
            f" ({result.error})" if result.error else "",
            job_id=job_id,
        )

    def _on_termination(self, job_id: str) -> None:
        if self._pending.pop(job_id, None) is not None:
            self._jobs_changed.set()
            return
        job = self._jobs.get(job_id)
        if job is None:
            logger.debug("termination for unknown job {} ignored", job_id)
            return
        logger.bind(job_id=job_id).info("job {} terminated by the server", job_id)
        Job.of(job.ctx).request_end("terminated by the server")


def retry_delay(n: int) -> int:
    """Seconds to wait before the ``n``-th retry (1-based) of the connection: min(2·n, 10)."""
    return min(2 * n, 10)


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
