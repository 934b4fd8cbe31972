"""Greenlet bookkeeping: which job a greenlet works for, and who holds the hub too long.

Every greenlet belongs to a job group or to the worker. A job's greenlets carry its id, and
greenlets they spawn with plain ``gevent.spawn`` inherit it through gevent's spawn tree, so a
hub-block warning can name the job whose code stalled everyone else.
"""

from __future__ import annotations

import sys
import time
import traceback
from collections.abc import Callable
from typing import Any, TypeVar

import gevent
import gevent.events
from gevent import Greenlet
from greenlet import getcurrent
from loguru import logger

from ._bridge import post_to_hub, real_lock, to_thread

__all__ = [
    "HubBlockMonitor",
    "bind_job_id",
    "current_job_id",
    "enable_hub_block_detection",
    "job_id_of",
    "real_lock",
    "to_thread",
]

T = TypeVar("T")

_JOB_ATTR = "_syncagents_job_id"


def bind_job_id(greenlet: Any, job_id: str | None) -> None:
    """Mark ``greenlet`` (and, through the spawn tree, what it spawns) as working for a job."""
    setattr(greenlet, _JOB_ATTR, job_id)


def job_id_of(greenlet: Any) -> str | None:
    """The job a greenlet works for: its own mark or the nearest spawning ancestor's."""
    g = greenlet
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
    return job_id_of(getcurrent())


class HubBlockMonitor:
    """Logs a WARNING ``hub blocked <ms> ms`` with the job id and stack of the culprit.

    gevent's monitor thread samples the hub every ``max_blocking_ms`` and publishes
    ``EventLoopBlocked``; we only format and log it. Nothing is killed.
    """

    def __init__(self) -> None:
        self.max_blocking_ms = 100.0
        self.events = 0
        self._installed = False
        self.listeners: list[Callable[[str | None, float, str], None]] = []
        self._blocked: Any = None  # the greenlet of the block being reported
        self._hub_thread: int | None = None

    def install(self, max_blocking_ms: float) -> None:
        self.max_blocking_ms = float(max_blocking_ms)
        gevent.config.max_blocking_time = self.max_blocking_ms / 1000.0
        if not self._installed:
            self._installed = True
            gevent.events.subscribers.append(self._on_event)
        hub = gevent.get_hub()
        self._hub_thread = hub.thread_ident
        gevent.config.print_blocking_reports = False  # we log our own, shorter report
        if getattr(hub, "periodic_monitoring_thread", None) is None:
            gevent.config.monitor_thread = True
            hub.start_periodic_monitoring_thread()
            # gevent's monitor stops for good if its first check finds a hub that never ran
            # (the start of a CLI command): let the hub run once now.
            if getcurrent() is not hub:
                gevent.sleep(0)
        else:
            # an already running monitor keeps its own cadence: update its threshold
            hub.periodic_monitoring_thread._greenlet_tracer.max_blocking_time = (
                gevent.config.max_blocking_time
            )

    def uninstall(self) -> None:
        """Stop reporting (tests; a CLI process keeps it for its whole life)."""
        if self._installed:
            self._installed = False
            gevent.events.subscribers.remove(self._on_event)
        thread = getattr(gevent.get_hub(), "periodic_monitoring_thread", None)
        if thread is not None:
            thread.kill()
            gevent.get_hub().periodic_monitoring_thread = None

    def _on_event(self, event: Any) -> None:
        # Runs on gevent's monitor thread, once per sampling period (max_blocking_ms) in which
        # the hub saw no switch. A long block is reported once, when first seen; when the hub
        # runs again a follow-up line gives the total.
        if not isinstance(event, gevent.events.EventLoopBlocked):
            return
        if event.greenlet is self._blocked:
            return
        self._blocked = event.greenlet
        self.events += 1
        detected = time.perf_counter()
        job_id = job_id_of(event.greenlet)
        stack = _blocked_stack(event.info) or _stack_of_thread(self._hub_thread)
        blocked_ms = event.blocking_time * 1000.0
        logger.bind(job_id=job_id).warning(
            "hub blocked {:.0f} ms by {} (job {})\n{}",
            blocked_ms,
            _describe(event.greenlet),
            job_id or "-",
            stack.rstrip(),
        )
        for listener in list(self.listeners):
            listener(job_id, blocked_ms, stack)
        post_to_hub(self._block_ended, event.greenlet, job_id, detected, blocked_ms)

    def _block_ended(self, greenlet: Any, job_id: str | None, detected: float, ms: float) -> None:
        if self._blocked is greenlet:
            self._blocked = None
        total = ms + (time.perf_counter() - detected) * 1000.0
        logger.bind(job_id=job_id).info(
            "the hub was blocked {:.0f} ms in total (job {})", total, job_id or "-"
        )


def _blocked_stack(info: Any) -> str:
    # gevent's report captures the blocked thread's stack first, then formats the greenlet
    # tree (slow); by the time we run the greenlet may have moved on, so use its capture.
    lines = list(info or [])
    for i, line in enumerate(lines[:-1]):
        if str(line).startswith("Blocked Stack"):
            return str(lines[i + 1])
    return ""


def _stack_of_thread(thread_id: int | None) -> str:
    # We run on gevent's monitor thread while the hub's thread is stuck in the offending
    # greenlet: its current frame is that greenlet's stack. gevent's own report dumps every
    # greenlet in the process, far too much for one warning.
    frame = sys._current_frames().get(thread_id) if thread_id is not None else None
    if frame is None:
        return ""
    return "".join(traceback.format_stack(frame, limit=20))


def _describe(greenlet: Any) -> str:
    if isinstance(greenlet, Greenlet):
        return f"greenlet {getattr(greenlet, 'name', '') or hex(id(greenlet))}"
    return repr(greenlet)


hub_monitor = HubBlockMonitor()


def enable_hub_block_detection(max_blocking_ms: float = 100.0) -> HubBlockMonitor:
    """Turn on the hub-block WARNING (every CLI command does this)."""
    hub_monitor.install(max_blocking_ms)
    return hub_monitor
