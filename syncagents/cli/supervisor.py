"""``--processes N``: N worker processes under one supervisor.

Each child is a full worker (``run --processes 1 --health-port 0``) that registers on its own.
It reports its state to the supervisor as JSON lines on a pipe (fd in
``$SYNCAGENTS_STATUS_FD``); the supervisor serves the health endpoint for all of them,
restarts a child that exited, and forwards SIGTERM/SIGINT/SIGHUP so every child drains.

A child re-sends its state every ``HEARTBEAT`` seconds, changed or not, from its hub: one
silent for ``STALLED_AFTER`` seconds has its hub blocked (a job stuck in a C call, or hogging
the hub), and the health endpoint stops counting it as registered (logged once per stall).

Only a child exiting with ``EX_CONFIG`` (78: rejected credentials, invalid options) stops the
fleet: restarting cannot help, so the supervisor logs the child's reason, drains the others
and exits 78. Any other exit (a crash, ``os._exit`` in a job, an unreachable server) restarts
that child alone, after a backoff that doubles up to 10 s and starts over once a child has
run for 60 s.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import gevent
import gevent.event
import gevent.pool
from gevent.fileobject import FileObjectPosix
from loguru import logger

from .exit_signals import STOP_SIGNALS, ignore_stop_signals

__all__ = ["EX_CONFIG", "STATUS_FD_ENV", "Supervisor", "heartbeat", "status_reporter"]

STATUS_FD_ENV = "SYNCAGENTS_STATUS_FD"
EX_CONFIG = 78  # sysexits.h: configuration error — the only exit that stops the fleet
HEALTHY_RUN = 60.0  # a child that ran this long restarts after the shortest backoff
FIRST_BACKOFF = 1.0
MAX_BACKOFF = 10.0
HEARTBEAT = 2.0  # a child re-sends its state this often, changed or not
# a child silent this long has its hub blocked: five heartbeats missed (a busy but working hub
# is late by a fraction of a second, not by seconds)
STALLED_AFTER = 10.0


def status_reporter(on_orphaned: Callable[[], None]) -> Any:
    """In a child: a ``Worker.add_status_listener`` callback writing to the supervisor's
    pipe, or ``None`` when not supervised. ``on_orphaned()`` runs once if the supervisor is
    gone (the pipe broke): the worker should drain rather than live on unsupervised."""
    fd = os.environ.get(STATUS_FD_ENV)
    if not fd:
        return None
    out = FileObjectPosix(int(fd), "wb", close=True)
    orphaned = False

    def report(info: dict[str, Any]) -> None:
        nonlocal orphaned
        if orphaned:
            return
        try:
            out.write(json.dumps(info).encode() + b"\n")
            out.flush()
        except OSError:
            orphaned = True
            logger.warning("the supervisor is gone; draining")
            on_orphaned()

    return report


def heartbeat(report: Callable[[dict[str, Any]], None], info: Callable[[], dict[str, Any]]) -> None:
    """In a child: ``report(info())`` every ``HEARTBEAT`` seconds until killed, so that the
    supervisor can tell a blocked process from a quiet one (status changes are reported as
    they happen, besides)."""
    while True:
        gevent.sleep(HEARTBEAT)
        report(info())


class RestartBackoff:
    """How long to wait before restarting a worker process that exited: ``FIRST_BACKOFF``,
    doubling up to ``MAX_BACKOFF`` while it keeps failing, and ``FIRST_BACKOFF`` again after
    a run that lasted ``HEALTHY_RUN`` (a new failure, not a crash loop). ``clock``: seconds,
    monotonic."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._next = FIRST_BACKOFF
        self._started_at: float | None = None

    def run_started(self) -> None:
        """The process (re)started now."""
        self._started_at = self._clock()

    def delay_after_exit(self) -> float:
        """The process exited now: seconds to wait before restarting it."""
        if self._started_at is not None and self._clock() - self._started_at >= HEALTHY_RUN:
            self._next = FIRST_BACKOFF
        delay = self._next
        self._next = min(self._next * 2, MAX_BACKOFF)
        return delay


@dataclass
class _Child:
    index: int
    proc: subprocess.Popen[bytes] | None = None
    info: dict[str, Any] = field(default_factory=dict)
    restarts: int = 0
    reported_at: float | None = None  # time.monotonic() of its last report (None: none yet)
    stall_logged: bool = False

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def reported(self, info: dict[str, Any], now: float) -> None:
        self.info = info
        self.reported_at = now
        if self.stall_logged:
            self.stall_logged = False
            logger.info("worker process {} reports again", self.index)

    def stalled(self, now: float) -> bool:
        """Running, reported before, and silent for ``STALLED_AFTER`` seconds since."""
        return (
            self.running()
            and self.reported_at is not None
            and now - self.reported_at >= STALLED_AFTER
        )


class Supervisor:
    """Run ``count`` worker processes (the command ``argv``) and keep them running.

    It serves the health endpoint for all of them on ``health_host:health_port`` (0: none), restarts
    a child that exited (with a backoff), and forwards SIGTERM/SIGINT/SIGHUP so every child drains.
    A child exiting with ``EX_CONFIG`` stops them all; ``fatal_reason`` then holds the reason it
    reported. Children still running ``stop_timeout`` seconds after the stop are killed (a
    worker stuck in a C call cannot drain).
    """

    def __init__(
        self,
        argv: list[str],
        count: int,
        *,
        env: dict[str, str],
        agent_name: str = "",
        health_host: str = "127.0.0.1",
        health_port: int = 0,
        stop_timeout: float = 1800,
    ) -> None:
        self.argv = argv
        self.count = count
        self.env = env
        self.agent_name = agent_name
        self.health_host = health_host
        self.health_port = health_port
        self.stop_timeout = stop_timeout
        self.children = [_Child(i) for i in range(count)]
        self._stopping = gevent.event.Event()
        self._fatal = False
        self.fatal_reason = ""
        self._group = gevent.pool.Group()
        self._reaper: gevent.Greenlet | None = None

    def health_info(self) -> dict[str, Any]:
        """The health endpoint's JSON: the running children's state, merged.

        ``registered`` when at least one child is (a stalled one does not count), their ids
        joined with commas, the sum of their ``active_jobs``, the mean ``load`` of the
        registered ones, and a ``processes`` list with each child's pid, restart count, whether
        it is ``stalled`` (silent for ``STALLED_AFTER`` s) and last reported state.
        """
        now = time.monotonic()
        running = [c for c in self.children if c.running()]
        infos = [c.info for c in running]
        registered = [c.info for c in running if c.info.get("registered") and not c.stalled(now)]
        loads = [float(i.get("load", 0.0)) for i in registered]
        return {
            "registered": bool(registered),
            "id": ",".join(str(i.get("id", "")) for i in registered),
            "agent_name": self.agent_name,
            "active_jobs": sum(int(i.get("active_jobs", 0)) for i in infos),
            "load": sum(loads) / len(loads) if loads else 0.0,
            "processes": [
                {
                    "pid": c.proc.pid if c.proc else None,
                    "restarts": c.restarts,
                    "stalled": c.stalled(now),
                    **c.info,
                }
                for c in self.children
            ],
        }

    def run(self) -> int:
        """Start the children and block until all of them stopped for good.

        Returns ``EX_CONFIG`` (78) when a child stopped on a configuration error, else 0 (after a
        forwarded signal drained them all).
        """
        health = None
        if self.health_port:
            from ..health import HealthServer

            try:
                health = HealthServer(self.health_info, self.health_host, self.health_port).start()
            except OSError as exc:
                logger.error("health server could not listen on port {}: {}", self.health_port, exc)
        handlers = [
            gevent.signal_handler(sig, self._on_signal, sig)
            for sig in STOP_SIGNALS
        ]
        watcher = gevent.spawn(self._watch_stalls)
        try:
            logger.info("starting {} worker processes", self.count)
            for child in self.children:
                self._group.spawn(self._keep_running, child)
            self._group.join()
        finally:
            watcher.kill(block=False)
            if self._reaper is not None:
                self._reaper.kill(block=False)
            for h in handlers:
                h.cancel()
            ignore_stop_signals()  # the fleet is down: a late Ctrl-C must not break the exit
            if health is not None:
                health.stop()
        return EX_CONFIG if self._fatal else 0

    def _on_signal(self, sig: int) -> None:
        if self._stopping.is_set():
            logger.warning("second signal: worker processes close now")
            self._signal_children(signal.SIGTERM)  # a worker's second signal: close at once
            return
        logger.info("{}: draining worker processes", signal.Signals(sig).name)
        self._stop_all()

    def _stop_all(self) -> None:
        """Ask every child to drain, and kill those still running after ``stop_timeout``."""
        self._stopping.set()
        self._signal_children(signal.SIGTERM)
        if self._reaper is None:
            self._reaper = gevent.spawn_later(self.stop_timeout, self._kill_children)

    def _watch_stalls(self) -> None:
        while True:
            gevent.sleep(HEARTBEAT)  # a periodic check: staying silent has no event
            now = time.monotonic()
            for child in self.children:
                if child.stalled(now) and not child.stall_logged:
                    child.stall_logged = True
                    assert child.reported_at is not None and child.proc is not None
                    logger.warning(
                        "worker process {} (pid {}) sent no status for {:.0f} s: its hub is "
                        "blocked (a job stuck in a C call?); not counted as registered",
                        child.index, child.proc.pid, now - child.reported_at,
                    )

    def _kill_children(self) -> None:
        running = [c for c in self.children if c.proc is not None and c.proc.poll() is None]
        if running:
            logger.error(
                "{} worker process(es) still running {:.0f} s after the stop; killing them",
                len(running),
                self.stop_timeout,
            )
            self._signal_children(signal.SIGKILL)

    def _signal_children(self, sig: int) -> None:
        for child in self.children:
            if child.proc is not None and child.proc.poll() is None:
                try:
                    child.proc.send_signal(sig)
                except OSError:
                    pass

    def _keep_running(self, child: _Child) -> None:
        backoff = RestartBackoff()
        while not self._stopping.is_set():
            backoff.run_started()
            code, reason = self._run_child(child)
            if self._stopping.is_set():
                return
            if code == EX_CONFIG:
                # credentials or options: every child would fail the same way
                self._fatal = True
                self.fatal_reason = reason
                logger.error(
                    "worker process {} stopped on a configuration error{}; stopping all",
                    child.index,
                    f": {reason}" if reason else "",
                )
                self._stop_all()
                return
            delay = backoff.delay_after_exit()
            child.restarts += 1
            logger.warning(
                "worker process {} exited with {}{}; restarting it in {:.1f} s",
                child.index,
                _describe_exit(code),
                f" ({reason})" if reason else "",
                delay,
            )
            self._stopping.wait(delay)

    def _run_child(self, child: _Child) -> tuple[int, str]:
        """Run the child to its end: its exit code and the fatal reason it reported."""
        read_fd, write_fd = os.pipe()
        env = dict(self.env, **{STATUS_FD_ENV: str(write_fd)})
        try:
            # own session: a terminal's Ctrl-C reaches only the supervisor, which forwards
            # one SIGTERM (a second signal would make a worker close instead of drain)
            child.proc = subprocess.Popen(
                self.argv, env=env, pass_fds=(write_fd,), start_new_session=True
            )
        finally:
            os.close(write_fd)
        reader = gevent.spawn(self._read_status, child, read_fd)
        try:
            code = child.proc.wait()
        finally:
            reader.join(timeout=2)
            reader.kill()
            reason = str(child.info.get("fatal", ""))
            child.info, child.reported_at, child.stall_logged = {}, None, False
        return int(code), reason

    def _read_status(self, child: _Child, fd: int) -> None:
        stream = FileObjectPosix(fd, "rb", close=True)
        try:
            for line in stream:
                try:
                    info = json.loads(line)
                except ValueError:
                    continue
                child.reported(info, time.monotonic())
        finally:
            stream.close()


def _describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"code {code}"
