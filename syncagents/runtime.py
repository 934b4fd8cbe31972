"""Greenlet bookkeeping: which job a greenlet works for, and who holds the hub too long.

A job is a nursery (trio's model). Its root greenlets share one *spawn tree* dictionary
(gevent's ``spawn_tree_locals``), and gevent gives that same dictionary to every greenlet they
spawn, by any means (``gevent.spawn``, pools, ``Greenlet(...).start()``), at creation time. So
the job a greenlet belongs to is fixed when it is created and survives its spawner's death.
One greenlet switch tracer (:class:`SwitchTracer`) sees every greenlet the first time it runs
and adds it to its job's :class:`JobScope`, which kills them all when the job ends.

The same tracer records when the hub last switched: :class:`HubBlockMonitor` watches that from
a native thread and reports one greenlet holding the hub too long, with the measured time,
that greenlet's stack only, and its job.
"""

from __future__ import annotations

import atexit
import sys
import time
import traceback
import types
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import gevent
import greenlet as greenlet_mod
from gevent import Greenlet
from greenlet import getcurrent
from loguru import logger

from ._bridge import (
    CapacityLimiter,
    native_thread,
    real_lock,
    real_sleep,
    set_thread_pool_size,
    thread_pool_size,
    to_thread,
)
from ._internals import check_gevent
from .log import quiet_default_handler

__all__ = [
    "CapacityLimiter",
    "HubBlockMonitor",
    "JobScope",
    "bind_job_id",
    "current_job_id",
    "enable_hub_block_detection",
    "job_id_of",
    "job_scope_of",
    "real_lock",
    "set_thread_pool_size",
    "thread_pool_size",
    "to_thread",
]

T = TypeVar("T")

_JOB_ATTR = "_syncagents_job_id"  # explicit binding, for greenlets outside any job scope
_SCOPE_KEY = "syncagents.job_scope"  # the job's entry in a spawn tree's locals
_ADOPTED_ATTR = "_syncagents_scope"  # set on a greenlet once its scope counts it
_perf = time.perf_counter


# -- job scopes ----------------------------------------------------------------------------------


class JobScope:
    """The set of greenlets a job owns: every greenlet created, by anyone, from a greenlet in
    the scope. :meth:`close` kills them all; nothing can be started in it afterwards."""

    def __init__(
        self, job_id: str, on_failure: Callable[[BaseException], None] | None = None
    ) -> None:
        self.job_id = job_id
        self.closed = False
        # called (in the hub) when a member dies of an uncaught error; default: log it
        self.on_failure = on_failure
        self._tree: dict[str, Any] = {_SCOPE_KEY: self}
        self._members: set[Greenlet] = set()
        self._prune_at = 1024
        tracer.install()

    def spawn(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Greenlet:
        """Start ``fn`` in a greenlet of this scope; ``RuntimeError`` once the scope closed."""
        if self.closed:
            raise RuntimeError(f"job {self.job_id} has ended: cannot start {_name(fn)}")
        g = Greenlet(fn, *args, **kwargs)
        self.adopt(g)
        g.start()
        return g

    def adopt(self, g: Any) -> None:
        """Make ``g`` (not started yet, or running) a member: it and what it spawns belong here."""
        if isinstance(g, Greenlet):
            g.spawn_tree_locals = self._tree
        self._add(g)

    def _add(self, g: Any) -> None:
        setattr(g, _ADOPTED_ATTR, self)
        members = self._members
        members.add(g)
        if len(members) >= self._prune_at:  # long jobs start many short greenlets
            self._members = {m for m in members if not m.dead}
            self._prune_at = max(1024, 2 * len(self._members))
        if self.closed:  # created after the end (a member that ignored its kill): end it too
            g.kill(block=False)

    def greenlets(self) -> list[Greenlet]:
        """The members still alive."""
        return [g for g in self._members if not g.dead]

    def __len__(self) -> int:
        return len(self.greenlets())

    def close(self, timeout: float = 2.0, except_current: bool = True) -> list[Greenlet]:
        """Kill every member (and whatever they spawn while dying); returns those still alive
        after ``timeout`` (they swallowed ``GreenletExit``)."""
        self.closed = True
        me = getcurrent()
        deadline = _perf() + timeout
        alive: list[Greenlet] = []
        for _ in range(16):  # a dying greenlet may spawn once more: a few rounds settle it
            alive = [g for g in self._members if not g.dead and g is not me]
            if not alive:
                break
            left = deadline - _perf()
            if left <= 0:
                break
            gevent.killall(alive, block=True, timeout=left)
            gevent.sleep(0)  # greenlets spawned during the kill run once and get adopted
        alive = [g for g in self._members if not g.dead and g is not me]
        if not except_current and not me.dead and me in self._members:
            alive.append(me)
        return alive

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"JobScope({self.job_id!r}, {state}, {len(self._members)} greenlets)"


def job_scope_of(g: Any) -> JobScope | None:
    """The scope ``g`` was created in, if any."""
    tree = getattr(g, "spawn_tree_locals", None)
    if tree:
        scope = tree.get(_SCOPE_KEY)
        if scope is not None:
            return scope  # type: ignore[no-any-return]
    return None


def bind_job_id(g: Any, job_id: str | None) -> None:
    """Name the job ``g`` works for, for greenlets outside any scope (the worker's job
    drivers, raw greenlets); greenlets created in a :class:`JobScope` carry its id already."""
    setattr(g, _JOB_ATTR, job_id)


def job_id_of(g: Any) -> str | None:
    """The job a greenlet works for: its scope's, else an explicit binding of it or of the
    nearest spawning ancestor still alive (greenlets outside scopes)."""
    scope = job_scope_of(g)
    if scope is not None:
        return scope.job_id
    for _ in range(64):  # spawn trees are shallow; the bound guards against cycles
        if g is None:
            return None
        jid = getattr(g, _JOB_ATTR, None)
        if jid is not None:
            return jid  # type: ignore[no-any-return]
        ref = getattr(g, "spawning_greenlet", None)
        g = ref() if ref is not None else None
    return None


def current_job_id() -> str | None:
    """The job the calling greenlet works for (``None`` outside jobs)."""
    return job_id_of(getcurrent())


# -- the switch tracer -----------------------------------------------------------------------


class SwitchTracer:
    """One ``greenlet.settrace`` hook for the process: records the time of the last switch
    (for the hub-block monitor) and adopts every greenlet of a job scope the first time it
    runs. A plain Python callback per switch: ~0.5 µs."""

    def __init__(self) -> None:
        self.last_switch = _perf()
        self.current: Any = None
        self.installed = False
        self.on_block_end: Callable[[float], None] | None = None
        self._previous: Any = None

    def install(self) -> None:
        """Install the hook with ``greenlet.settrace`` (for the calling thread); idempotent.

        A trace function set before is kept and still called after this one.
        """
        if self.installed:
            return
        self.installed = True
        self._previous = greenlet_mod.settrace(self._trace)

    def _trace(self, event: str, args: Any) -> None:
        if event == "switch" or event == "throw":
            now = _perf()
            target = args[1]
            self.current = target
            if self.on_block_end is not None:  # a reported block just ended
                ended, self.on_block_end = self.on_block_end, None
                ended(now)
            self.last_switch = now
            tree = getattr(target, "spawn_tree_locals", None)
            if tree:
                scope = tree.get(_SCOPE_KEY)
                if scope is not None and getattr(target, _ADOPTED_ATTR, None) is not scope:
                    scope._add(target)
        if self._previous is not None:
            self._previous(event, args)


tracer = SwitchTracer()


def _exc_text(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _name(fn: Any) -> str:
    return str(getattr(fn, "__qualname__", None) or repr(fn))


# -- failures in greenlets -------------------------------------------------------------------

def _install_hub_error_handler() -> None:
    # gevent sends an uncaught SystemExit/KeyboardInterrupt from any greenlet to the main
    # greenlet, which exits the process: one job could stop the worker. Errors of job
    # greenlets go to their job instead; everything else keeps gevent's behaviour.
    hub = gevent.get_hub()
    if getattr(hub, "_syncagents_errors", False):
        return
    original = hub.handle_error

    def handle_error(self: Any, context: Any, type_: Any, value: Any, tb: Any) -> None:
        scope = job_scope_of(context)
        if scope is None or type_ is None or isinstance(value, gevent.GreenletExit):
            original(context, type_, value, tb)
            return
        if value is None:
            value = type_()
        logger.bind(job_id=scope.job_id).opt(exception=(type_, value, tb)).error(
            "{} raised in job {}: {}", _describe(context), scope.job_id, _exc_text(value)
        )
        if scope.on_failure is not None:
            scope.on_failure(value)

    hub.handle_error = types.MethodType(handle_error, hub)
    hub._syncagents_errors = True


check_gevent(Greenlet)  # jobs are built on spawn_tree_locals
_install_hub_error_handler()
quiet_default_handler()


# -- hub-block monitor -----------------------------------------------------------------------

BlockListener = Callable[[str | None, float, str], None]


class HubBlockMonitor:
    """Logs a WARNING ``hub blocked <ms> ms`` with the job id and stack of the greenlet that
    holds the hub, within the threshold + one sampling period (≤ 25 ms) of the block's start,
    whatever the number of greenlets; then, once the hub runs again, the block's measured
    total. Runs on a native thread that samples :class:`SwitchTracer`. Nothing is killed.
    The main greenlet is not watched: it imports the app and prewarms before anything serves.
    """

    def __init__(self) -> None:
        self.max_blocking_ms = 100.0
        self.events = 0
        self.listeners: list[BlockListener] = []
        self.report_cpu_ms: list[float] = []  # CPU spent formatting each report (bench)
        self._running = False
        self._hub: Any = None
        self._main: Any = None
        self._hub_thread: int | None = None
        self._lock = real_lock()
        self._reported: tuple[Any, float] | None = None
        self._atexit = False

    def install(self, max_blocking_ms: float) -> None:
        """Start watching with this threshold (again: change the threshold)."""
        self.max_blocking_ms = float(max_blocking_ms)
        tracer.install()
        hub = gevent.get_hub()
        self._hub = hub
        self._main = hub.parent
        self._hub_thread = hub.thread_ident
        if not self._running:
            self._running = True
            native_thread(self._watch, "syncagents-hub-monitor")
            if not self._atexit:
                self._atexit = True
                atexit.register(self.uninstall)  # no reports into closed streams at exit

    def uninstall(self) -> None:
        """Stop reporting (tests; a CLI process keeps it for its whole life)."""
        self._running = False

    def _period(self) -> float:
        return min(self.max_blocking_ms / 4000.0, 0.025)

    def _watch(self) -> None:
        while self._running:
            real_sleep(self._period())
            try:
                self._sample()
            except Exception:  # never let the watcher die of one bad sample
                pass

    def _sample(self) -> None:
        since = tracer.last_switch
        current = tracer.current
        if tracer.last_switch != since:  # switched while we read: not blocked
            return
        if current is None or current is self._hub or current is self._main:
            # The main greenlet only sets things up (imports, prewarm) before the worker,
            # console or test spawns the greenlets that serve: nothing else could run then.
            return
        if self._reported is not None and self._reported[1] == since:
            return  # this block was reported already
        held = (_perf() - since) * 1000.0
        if held < self.max_blocking_ms:
            return
        start_cpu = time.thread_time()
        self._reported = (current, since)
        self.events += 1
        job_id = job_id_of(current)
        stack = _stack_of_thread(self._hub_thread)
        report = time.thread_time() - start_cpu
        self.report_cpu_ms.append(report * 1000.0)

        def ended(end: float, job_id: str | None = job_id) -> None:
            # on the hub thread, at the first switch after the block
            logger.bind(job_id=job_id).info(
                "the hub was blocked {:.0f} ms in total (job {})", (end - since) * 1000.0,
                job_id or "-",
            )

        tracer.on_block_end = ended
        if tracer.last_switch != since and tracer.on_block_end is ended:
            # the block ended while we looked: the tracer's latest switch is (about) its end
            tracer.on_block_end = None
            ended(tracer.last_switch)
        logger.bind(job_id=job_id).warning(
            "hub blocked {:.0f} ms by {} (job {})\n{}",
            held,
            _describe(current),
            job_id or "-",
            stack.rstrip(),
        )
        for listener in list(self.listeners):
            listener(job_id, held, stack)


def _stack_of_thread(thread_id: int | None, limit: int = 25) -> str:
    # The hub's thread is stuck in the offending greenlet: its current frame is that
    # greenlet's stack, and only that one is formatted (not every greenlet in the process).
    frame = sys._current_frames().get(thread_id) if thread_id is not None else None
    if frame is None:
        return ""
    return "".join(traceback.format_stack(frame, limit=limit))


def _describe(g: Any) -> str:
    if isinstance(g, Greenlet):
        return f"greenlet {getattr(g, 'name', '') or hex(id(g))}"
    return repr(g)


hub_monitor = HubBlockMonitor()


def enable_hub_block_detection(max_blocking_ms: float = 100.0) -> HubBlockMonitor:
    """Turn on the hub-block WARNING (every CLI command does this)."""
    hub_monitor.install(max_blocking_ms)
    return hub_monitor


def alive(greenlets: Iterable[Greenlet]) -> list[Greenlet]:
    """The greenlets of ``greenlets`` that have not finished."""
    return [g for g in greenlets if not g.dead]
