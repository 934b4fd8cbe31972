"""The clock that turn-taking runs on: when the user's speech ended, when a turn's endpoint
is due, and the times its metrics are made of.

``MonotonicClock`` (the default) is ``time.monotonic()`` and ``gevent.sleep``.
``VirtualClock`` only moves when told to (``advance``), so a test can hold the endpointing
delay open for as long as it needs (say, until a preemptive reply is synthesized) and then
release it, without sleeping and without depending on the machine's speed:

    clock = VirtualClock()
    assistant = VoiceAssistant(..., clock=clock)
    ...                      # the user speaks; wait for an event with a timeout
    clock.advance(0.5)       # the endpointing delay runs out: the reply plays

Only the assistant's turn-taking uses the clock; audio keeps flowing in real time.
"""

from __future__ import annotations

import heapq
import itertools
import time
from typing import Protocol

import gevent
import gevent.event

__all__ = ["MONOTONIC", "Clock", "MonotonicClock", "VirtualClock"]


class Clock(Protocol):
    """What turn-taking needs of a clock: the time, and a way to wait for a time."""

    def now(self) -> float:
        """The current time in seconds (only differences between two readings mean
        anything)."""
        ...

    def sleep_until(self, deadline: float) -> None:
        """Block the calling greenlet until ``now() >= deadline`` (at once if it already
        is). Killing the greenlet ends the wait."""
        ...


class MonotonicClock:
    """The real clock: ``time.monotonic()``; waits are ``gevent.sleep``."""

    def now(self) -> float:
        """``time.monotonic()``."""
        return time.monotonic()

    def sleep_until(self, deadline: float) -> None:
        """Sleep (cooperatively) until ``deadline``."""
        delay = deadline - time.monotonic()
        if delay > 0:
            gevent.sleep(delay)


MONOTONIC = MonotonicClock()
"""The process's real clock (the default of ``VoiceAssistant(clock=)``)."""


class VirtualClock:
    """A clock that stands still until ``advance()`` or ``set()`` moves it forward.

    Greenlets waiting in ``sleep_until`` wake once the time reaches their deadline, in
    deadline order, when the greenlet that moved the clock next yields to the hub.
    """

    def __init__(self, start: float = 1000.0) -> None:
        # not 0: "-1 means never" is a convention in the metrics, keep clear of it
        self._now = float(start)
        self._waiters: list[tuple[float, int, gevent.event.Event]] = []
        self._order = itertools.count()

    def now(self) -> float:
        """The virtual time."""
        return self._now

    def sleep_until(self, deadline: float) -> None:
        """Block until the virtual time reaches ``deadline``."""
        if deadline <= self._now:
            return
        event = gevent.event.Event()
        heapq.heappush(self._waiters, (deadline, next(self._order), event))
        event.wait()

    def advance(self, seconds: float) -> None:
        """Move the time ``seconds`` forward and wake the waits that are due."""
        if seconds < 0:
            raise ValueError("a clock does not go back")
        self.set(self._now + seconds)

    def set(self, now: float) -> None:
        """Move the time forward to ``now`` and wake the waits that are due."""
        if now < self._now:
            raise ValueError("a clock does not go back")
        self._now = float(now)
        while self._waiters and self._waiters[0][0] <= self._now:
            heapq.heappop(self._waiters)[2].set()

    @property
    def waiting(self) -> int:
        """How many waits have not reached their deadline (killed ones included)."""
        return len(self._waiters)
