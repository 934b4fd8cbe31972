"""Jobs: the request a worker is offered, and the context an entrypoint runs in.

A :class:`Job` is a job's life: its nursery (a ``JobScope``: the entrypoint greenlet,
whatever it or ``ctx.spawn`` starts, and the room's event handlers all live there, carry the
job id so hub-block warnings name the job, and die with it), its end, and the driver that
runs the entrypoint and never lets its exceptions out. The worker runs one for every
assignment, and the console one around a local room, with no worker or server at all.
"""

from __future__ import annotations

import enum
import inspect
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import gevent
import gevent.event
import gevent.pool
from gevent import Greenlet
from greenlet import getcurrent
from livekit.protocol import agent as proto
from livekit.protocol import models
from loguru import logger

from .room_events import RoomEvents
from .runtime import JobScope, bind_job_id, job_id_of

if TYPE_CHECKING:
    from .api import LiveKitAPI

__all__ = [
    "AutoDisconnect",
    "AutoSubscribe",
    "Job",
    "JobAcceptArguments",
    "JobContext",
    "JobRequest",
    "JobResult",
    "make_job",
    "run_job",
]

SHUTDOWN_CALLBACK_TIMEOUT = 5.0  # each shutdown callback (API.md)
KILL_TIMEOUT = 2.0  # greenlets that swallow GreenletExit do not hold a job's end forever
DISCONNECT_TIMEOUT = 5.0

Entrypoint = Callable[["JobContext"], Any]


class AutoSubscribe(str, enum.Enum):
    """Which remote tracks ``JobContext.connect()`` subscribes to.

    ``SUBSCRIBE_ALL`` (every track), ``SUBSCRIBE_NONE`` (none: subscribe yourself), ``AUDIO_ONLY``
    or ``VIDEO_ONLY`` (each matching track, as its publication shows up).
    """

    SUBSCRIBE_ALL = "subscribe_all"
    SUBSCRIBE_NONE = "subscribe_none"
    AUDIO_ONLY = "audio_only"
    VIDEO_ONLY = "video_only"


class AutoDisconnect(str, enum.Enum):
    """When a connected job leaves its room on its own, ending the job.

    ``ROOM_EMPTY``: once no remote participant is left. ``PUBLISHER_LEFT``: once the job's publisher
    left (``JT_PUBLISHER`` jobs). ``NONE``: stay until shutdown.
    """

    ROOM_EMPTY = "room_empty"  # leave once no remote participant is left
    PUBLISHER_LEFT = "publisher_left"  # leave once the job's publisher left (JT_PUBLISHER)
    NONE = "none"  # stay until shutdown


@dataclass
class JobAcceptArguments:
    """How a job was accepted: the entrypoint to run and the agent's participant ``name``,
    ``identity`` (empty: the server picks one), ``metadata`` and ``attributes`` in the room."""

    entrypoint: Entrypoint | None
    name: str = ""
    identity: str = ""
    metadata: str = ""
    attributes: dict[str, str] = field(default_factory=dict)


AnswerFn = Callable[["JobRequest", "JobAcceptArguments | None", bool], None]


class JobRequest:
    """A job the server offers; ``request_fnc(req)`` answers with :meth:`accept` or
    :meth:`reject` (once)."""

    def __init__(self, job: proto.Job, on_answer: AnswerFn) -> None:
        self.job = job
        self._on_answer = on_answer
        self.answered = False
        self.accepted = False

    @property
    def id(self) -> str:
        """The job's id."""
        return str(self.job.id)

    @property
    def room(self) -> models.Room:
        """The room the job is for (protobuf ``Room``)."""
        return self.job.room

    @property
    def publisher(self) -> models.ParticipantInfo | None:
        """The participant the job is for (``JT_PUBLISHER`` jobs), or ``None``."""
        return self.job.participant if self.job.HasField("participant") else None

    @property
    def agent_name(self) -> str:
        """The agent name the job was dispatched to (empty for automatic dispatch)."""
        return str(self.job.agent_name)

    def accept(
        self,
        entrypoint: Entrypoint | None = None,
        *,
        name: str = "",
        identity: str = "",
        metadata: str = "",
        attributes: dict[str, str] | None = None,
    ) -> None:
        """Take the job; ``entrypoint`` defaults to ``WorkerOptions.entrypoint_fnc`` and
        ``identity`` to ``agent-<job id>``."""
        args = JobAcceptArguments(
            entrypoint=entrypoint,
            name=name,
            identity=identity or f"agent-{self.id}",
            metadata=metadata,
            attributes=dict(attributes or {}),
        )
        self._answer(args, False)
        self.accepted = True

    def reject(self, terminate: bool = False) -> None:
        """Decline the job (``terminate=True`` also tells the server to end the dispatch)."""
        self._answer(None, terminate)

    def _answer(self, args: JobAcceptArguments | None, terminate: bool) -> None:
        if self.answered:
            raise RuntimeError(f"job request {self.id} was already answered")
        self.answered = True
        try:
            self._on_answer(self, args, terminate)
        except BaseException:
            self.answered = False  # not answered after all: the worker's fallback rejects it
            raise

    def __repr__(self) -> str:
        return f"JobRequest(id={self.id!r}, room={self.room.name!r})"


@dataclass
class JobResult:
    """How a job ended: ``failed`` with ``error`` (``"<ExceptionType>: <message>"`` or
    ``"drain timeout"``), else succeeded; ``reason`` says what ended it."""

    job_id: str
    failed: bool
    error: str
    reason: str


def make_job(
    room: str = "console",
    *,
    job_id: str | None = None,
    agent_name: str = "",
    participant_identity: str | None = None,
    metadata: str = "",
    job_type: int = proto.JT_ROOM,
) -> proto.Job:
    """A fabricated ``Job`` for running an entrypoint with no server (console, tests)."""
    job = proto.Job(
        id=job_id or f"AJ_{uuid.uuid4().hex[:12]}",
        type=job_type,  # type: ignore[arg-type]
        agent_name=agent_name,
        metadata=metadata,
    )
    job.room.name = room
    job.room.sid = f"RM_{uuid.uuid4().hex[:12]}"
    if participant_identity is not None:
        job.participant.identity = participant_identity
        job.participant.sid = f"PA_{uuid.uuid4().hex[:12]}"
    return job


class JobContext:
    """What an entrypoint gets: the job, its (not yet connected) room, and the job's life.

    ``room`` is created on first use, so a job that never joins a room never loads the
    livekit FFI. Pass ``room=`` to run against another room object (the console's local room,
    a fake in tests); ``url``/``token`` are what :meth:`connect` hands to ``room.connect``.
    """

    def __init__(
        self,
        job: proto.Job,
        room: Any = None,
        *,
        url: str = "",
        token: str = "",
        userdata: Any = None,
        worker_id: str = "",
        accept_arguments: JobAcceptArguments | None = None,
        api_key: str = "",
        api_secret: str = "",
    ) -> None:
        self.job = job
        self.userdata = userdata
        self.worker_id = worker_id
        self.accept_arguments = accept_arguments
        self._url = url
        self._token = token
        self._room: Any = None
        # the job's life (nursery, end, shutdown callbacks, driver): see :class:`Job`
        self._life = Job(self)
        self._participant_waiters: list[tuple[Callable[[Any], bool], gevent.event.AsyncResult]] = []
        self._auto_subscribe = AutoSubscribe.SUBSCRIBE_ALL
        self._auto_disconnect = AutoDisconnect.ROOM_EMPTY
        self._connected = False
        # the worker's credentials, for ``api`` (never logged; the repr leaves them out)
        self._api_key = api_key
        self._api_secret = api_secret
        self._api: LiveKitAPI | None = None
        self._api_closed = False
        if room is not None:
            self._adopt_room(room)

    # -- identity ---------------------------------------------------------------------------
    @property
    def job_id(self) -> str:
        """The job's id."""
        return str(self.job.id)

    @property
    def url(self) -> str:
        """The server URL ``connect()`` joins the room on."""
        return self._url

    @property
    def token(self) -> str:
        """The access token ``connect()`` joins the room with (issued for this job)."""
        return self._token

    # -- the room ---------------------------------------------------------------------------
    @property
    def room(self) -> Any:
        """The job's ``syncagents.rtc.Room`` (created on first access, not connected).

        A ``local://`` URL names an in-process ``syncagents.testing.LocalRoom`` instead (a
        job dispatched by ``syncagents.testing.DispatchServer``): the job gets that room."""
        if self._room is None:
            if self._url.startswith("local://"):
                # resolved by URL, like any room: the worker does not know who dispatched it
                from .testing.local_room import open_local_room

                self._adopt_room(open_local_room(self._url))
            else:
                from . import rtc  # lazy: loads the livekit FFI only for jobs that use a room

                self._adopt_room(rtc.Room())
        return self._room

    @property
    def agent(self) -> Any:
        """The agent's local participant (after :meth:`connect`)."""
        return self.room.local_participant

    def _adopt_room(self, room: Any) -> None:
        self._room = room
        if isinstance(room, RoomEvents):
            # its event handlers become job greenlets: they carry the job id and die with it
            room.run_handlers_in(self._life.scope)
        room.on("participant_connected", self._on_participant_connected)
        room.on("participant_disconnected", self._on_participant_disconnected)
        room.on("track_published", self._on_track_published)
        room.on("disconnected", self._on_room_disconnected)

    def _room_connected(self) -> bool:
        if self._room is None:
            return False
        try:
            return bool(self._room.isconnected())
        except Exception:
            return False

    def connect(
        self,
        auto_subscribe: AutoSubscribe = AutoSubscribe.SUBSCRIBE_ALL,
        auto_disconnect: AutoDisconnect = AutoDisconnect.ROOM_EMPTY,
        timeout: float | None = 10,
    ) -> None:
        """Join the job's room with the token the server issued for this job."""
        self._auto_subscribe = AutoSubscribe(auto_subscribe)
        self._auto_disconnect = AutoDisconnect(auto_disconnect)
        room = self.room
        options = None
        if self._auto_subscribe is not AutoSubscribe.SUBSCRIBE_ALL:
            from . import rtc

            # AUDIO_ONLY / VIDEO_ONLY subscribe per track as publications show up
            options = rtc.RoomOptions(auto_subscribe=False)
        room.connect(self._url, self._token, options, timeout=timeout)
        self._connected = True
        if self._auto_subscribe in (AutoSubscribe.AUDIO_ONLY, AutoSubscribe.VIDEO_ONLY):
            for participant in list(room.remote_participants.values()):
                for publication in list(getattr(participant, "track_publications", {}).values()):
                    self._maybe_subscribe(publication)

    def wait_for_participant(
        self, identity: str | None = None, timeout: float | None = None
    ) -> Any:
        """The first remote participant (with ``identity``, else any non-agent one) present
        now or joining later; ``TimeoutError`` after ``timeout`` seconds."""

        def matches(p: Any) -> bool:
            if identity is not None:
                return bool(p.identity == identity)
            return int(getattr(p, "kind", 0)) != models.ParticipantInfo.Kind.AGENT

        for participant in list(self.room.remote_participants.values()):
            if matches(participant):
                return participant
        waiter = (matches, gevent.event.AsyncResult())
        self._participant_waiters.append(waiter)
        try:
            return waiter[1].get(timeout=timeout)
        except gevent.Timeout:
            who = f"participant {identity!r}" if identity else "a participant"
            raise TimeoutError(f"{who} did not join within {timeout} s") from None
        finally:
            self._participant_waiters.remove(waiter)

    def _on_participant_connected(self, participant: Any) -> None:
        for matches, result in list(self._participant_waiters):
            if not result.ready() and matches(participant):
                result.set(participant)

    def _on_participant_disconnected(self, participant: Any) -> None:
        if not self._connected:
            return
        if self._auto_disconnect is AutoDisconnect.ROOM_EMPTY:
            if not self._room.remote_participants:
                self.shutdown("room empty")
        elif (
            self._auto_disconnect is AutoDisconnect.PUBLISHER_LEFT
            and self.job.HasField("participant")
            and participant.identity == self.job.participant.identity
        ):
            self.shutdown("publisher left")

    def _on_track_published(self, publication: Any, participant: Any) -> None:
        self._maybe_subscribe(publication)

    def _maybe_subscribe(self, publication: Any) -> None:
        from . import rtc

        wanted = {
            AutoSubscribe.AUDIO_ONLY: rtc.TrackKind.KIND_AUDIO,
            AutoSubscribe.VIDEO_ONLY: rtc.TrackKind.KIND_VIDEO,
        }.get(self._auto_subscribe)
        if wanted is not None and publication.kind == wanted:
            try:
                publication.set_subscribed(True)
            except Exception:
                logger.opt(exception=True).warning("could not subscribe to {}", publication.sid)

    def _on_room_disconnected(self, *args: Any) -> None:
        self._life.request_end("room disconnected")

    # -- server API -------------------------------------------------------------------------
    @property
    def api(self) -> LiveKitAPI:
        """A ``syncagents.api.LiveKitAPI`` for the job's server with the worker's credentials
        (created on first use, closed when the job ends)."""
        if self._api is None:
            if self._api_closed:
                raise RuntimeError(f"job {self.job_id} has ended")
            from .api import LiveKitAPI  # lazy: jobs that never call the API never load it

            # empty values fall back to $LIVEKIT_URL / _API_KEY / _API_SECRET (console, tests)
            self._api = LiveKitAPI(
                url=self._url or None,
                api_key=self._api_key or None,
                api_secret=self._api_secret or None,
            )
        return self._api

    def delete_room(self, timeout: float | None = None) -> Any:
        """Delete the job's room on the server: everyone in it is disconnected, the agent too,
        which ends the job. Blocks until the server answered (``api.TwirpError`` if it
        refused; ``TimeoutError`` after ``timeout`` seconds) and returns its answer."""
        from . import api

        name = self.job.room.name or (self._room.name if self._room is not None else "")
        if not name:
            raise RuntimeError(f"job {self.job_id} has no room to delete")
        return self.api.room.delete_room(api.DeleteRoomRequest(room=name), timeout=timeout)

    def _close_api(self) -> None:
        self._api_closed = True
        client, self._api = self._api, None
        if client is not None:
            try:
                client.close()
            except Exception as exc:
                logger.bind(job_id=self.job_id).warning(
                    "job {}: closing its server API client failed: {}", self.job_id, exc
                )

    # -- greenlets ----------------------------------------------------------------------------
    def spawn(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Greenlet:
        """Run ``fn`` in a greenlet that belongs to this job: it carries the job id, its
        exceptions are logged (they do not end the job), and it is killed when the job ends."""
        return self._life.spawn(fn, *args, **kwargs)

    def greenlets(self) -> list[Greenlet]:
        """The job's greenlets still alive (everything started from the job, by anyone)."""
        return self._life.scope.greenlets()

    # -- ending -----------------------------------------------------------------------------
    def add_shutdown_callback(self, fn: Callable[..., Any]) -> None:
        """``fn(reason)`` (or ``fn()``) runs when the job ends, before its greenlets are
        killed; each callback gets at most 5 s."""
        self._life.add_shutdown_callback(fn)

    def shutdown(self, reason: str = "") -> None:
        """End the job (returns at once; the end runs in the job's driver)."""
        self._life.request_end(reason or "shutdown requested")

    @property
    def shutdown_reason(self) -> str:
        """Why the job is ending (e.g. ``"room empty"``); ``""`` until its end was requested."""
        return self._life.reason

    def is_ended(self) -> bool:
        """Whether the job's end was requested (it is ending or has ended).

        From then on ``spawn()`` raises ``RuntimeError``.
        """
        return self._life.ended

    def _leave_room(self, timeout: float) -> None:
        """Disconnect from the room if connected (the job is ending)."""
        if not self._room_connected():
            return
        try:
            self._room.disconnect(timeout=timeout)
        except Exception as exc:
            logger.bind(job_id=self.job_id).warning(
                "job {}: leaving the room failed: {}", self.job_id, exc
            )

    def __repr__(self) -> str:
        return f"JobContext(job_id={self.job_id!r}, room={self.job.room.name!r})"


def _takes_one_argument(fn: Callable[..., Any]) -> bool:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return False
    positional = [
        p
        for p in params
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty
    ]
    return len(positional) == 1 or (
        not positional and any(p.kind is p.VAR_POSITIONAL for p in params)
    )


def _logged(
    job_id: str, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    try:
        return fn(*args, **kwargs)
    except gevent.GreenletExit:
        raise
    except Exception:
        logger.bind(job_id=job_id).opt(exception=True).error(
            "{} raised in job {}", getattr(fn, "__qualname__", repr(fn)), job_id
        )
        return None


def describe_error(exc: BaseException) -> str:
    """The ``update_job`` error text: ``"<ExceptionType>: <message>"``."""
    message = str(exc)
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


class Job:
    """One job's life: its context, its nursery, its end and the driver that runs it.

    Every :class:`JobContext` has one (``Job.of(ctx)``). The worker and the console drive
    jobs through it: :meth:`run` runs the entrypoint and blocks until the job ended;
    :meth:`request_end` ends it from outside (server termination, drain timeout).
    """

    def __init__(self, ctx: JobContext) -> None:
        self.ctx = ctx
        self.id = ctx.job_id
        # the job's nursery: every greenlet started from the job's own, by any means
        self.scope = JobScope(self.id, on_failure=self._on_greenlet_failure)
        self.reason = ""
        """Why the job is ending; ``""`` until its end was requested."""
        self.error = ""
        """The error the job failed with (``"<Type>: <message>"``); ``""`` if it did not."""
        self._end_requested = gevent.event.Event()
        self._deadline: float | None = None
        self._callbacks: list[Callable[..., Any]] = []

    @staticmethod
    def of(ctx: JobContext) -> Job:
        """The job a context belongs to."""
        return ctx._life

    @property
    def ended(self) -> bool:
        """The job's end was requested (it is ending or has ended)."""
        return self._end_requested.is_set()

    def wait_ended(self, timeout: float | None = None) -> bool:
        """Block until the job's end is requested; False if ``timeout`` passed first."""
        return bool(self._end_requested.wait(timeout))

    def spawn(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Greenlet:
        """``fn`` in a job greenlet whose exceptions are logged with the job id (they do not
        end the job); ``RuntimeError`` once the job's end was requested."""
        if self.ended:
            raise RuntimeError(f"job {self.id} has ended")
        return self.scope.spawn(_logged, self.id, fn, args, kwargs)

    def add_shutdown_callback(self, fn: Callable[..., Any]) -> None:
        """``fn(reason)`` (or ``fn()``) runs first when the job ends; each gets at most 5 s."""
        self._callbacks.append(fn)

    def request_end(self, reason: str, error: str = "", budget: float | None = None) -> None:
        """End the job (returns at once; :meth:`run` does the ending). The first reason
        stays; ``error`` makes the job fail; ``budget``: seconds the whole end (callbacks,
        leaving the room, killing greenlets) may still take — a drain that timed out must
        exit on time whatever the job does. A later, shorter budget shortens an end under
        way."""
        if budget is not None:
            deadline = time.monotonic() + budget
            if self._deadline is None or deadline < self._deadline:
                self._deadline = deadline
        if self.ended:
            return
        self.reason = reason
        if error:
            self.error = error
        self._end_requested.set()

    def time_left(self, limit: float) -> float:
        """``limit``, or less when the job's end has a deadline."""
        if self._deadline is None:
            return limit
        return max(0.0, min(limit, self._deadline - time.monotonic()))

    def _on_greenlet_failure(self, exc: BaseException) -> None:
        # An uncaught error in one of the job's greenlets (already logged with the job id).
        # SystemExit and KeyboardInterrupt would have ended the process: they end the job.
        if isinstance(exc, (SystemExit, KeyboardInterrupt)):
            self.request_end("a greenlet raised " + type(exc).__name__, describe_error(exc))

    def run(
        self, entrypoint: Entrypoint, *, on_running: Callable[[], None] | None = None
    ) -> JobResult:
        """Run ``entrypoint(ctx)`` and block until the job ended; never raises for what the
        job did.

        The job ends when the entrypoint returned and the room is not connected, the room
        disconnects, ``ctx.shutdown()`` or :meth:`request_end` is called. Then the shutdown
        callbacks run, the room is left, every greenlet the job started is killed and its
        server API client closed.
        """
        ctx, job_id = self.ctx, self.id
        me = getcurrent()
        previous = job_id_of(me)
        bind_job_id(me, job_id)  # the driver's own work (callbacks, teardown) names the job too
        log = logger.bind(job_id=job_id)
        try:

            def entry() -> None:
                if on_running is not None:
                    on_running()
                try:
                    entrypoint(ctx)
                except gevent.GreenletExit:
                    raise
                except BaseException as exc:
                    error = describe_error(exc)
                    log.opt(exception=exc).error("job {} entrypoint raised {}", job_id, error)
                    self.request_end("entrypoint raised", error)
                    return
                if not ctx._room_connected():
                    self.request_end("entrypoint returned")

            self.scope.spawn(entry)
            self._end_requested.wait()
            log.debug("job {} ending: {}", job_id, self.reason)
            self._run_shutdown_callbacks()
            # leave the room first, so nothing the job still runs talks to a room that is
            # gone mid-call; then end every greenlet the job started, by whatever means
            ctx._leave_room(timeout=self.time_left(DISCONNECT_TIMEOUT) or 0.1)
            survivors = self.scope.close(timeout=self.time_left(KILL_TIMEOUT) or 0.1)
            if survivors:
                log.warning("job {}: {} greenlet(s) ignored the kill", job_id, len(survivors))
            ctx._close_api()  # after the callbacks and greenlets that may still have used it
            return JobResult(
                job_id=job_id, failed=bool(self.error), error=self.error, reason=self.reason
            )
        finally:
            bind_job_id(me, previous)

    def _run_shutdown_callbacks(self) -> None:
        for cb in list(self._callbacks):
            args = (self.reason,) if _takes_one_argument(cb) else ()
            g = self.scope.spawn(_logged, self.id, cb, args, {})
            started = time.monotonic()
            # in slices: a drain timeout may shorten the end while a callback runs
            while not g.dead:
                left = self.time_left(SHUTDOWN_CALLBACK_TIMEOUT - (time.monotonic() - started))
                if left <= 0:
                    break
                g.join(timeout=min(left, 0.25))
            if not g.dead:
                cut_short = self._deadline is not None and time.monotonic() - started < (
                    SHUTDOWN_CALLBACK_TIMEOUT
                )
                logger.bind(job_id=self.id).warning(
                    "shutdown callback {} still running {}; killed",
                    getattr(cb, "__qualname__", repr(cb)),
                    "when the job's time to end ran out (drain timeout)"
                    if cut_short
                    else f"after {SHUTDOWN_CALLBACK_TIMEOUT:.0f} s",
                )
                g.kill(block=True, timeout=self.time_left(KILL_TIMEOUT) or 0.1)

    def __repr__(self) -> str:
        return f"Job({self.id!r}, {'ended: ' + self.reason if self.ended else 'running'})"


def run_job(
    ctx: JobContext,
    entrypoint: Entrypoint,
    *,
    on_running: Callable[[], None] | None = None,
) -> JobResult:
    """Run ``entrypoint(ctx)`` as a job and block until it ended: ``Job.of(ctx).run(...)``."""
    return Job.of(ctx).run(entrypoint, on_running=on_running)
