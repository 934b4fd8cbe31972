"""``Chan``: a bounded, closable blocking queue between greenlets.

Every stream in syncagents (VAD, STT, TTS) is a producer greenlet and a consumer iterating a
``Chan``. What ``gevent.queue.Queue`` lacks, and this adds:

* ``close()``: wakes every blocked sender and receiver; receivers still drain what was queued,
  then get ``ChanClosed`` (a ``for`` loop simply ends);
* ``close_with_error(exc)``: the same, but receivers re-raise ``exc`` after draining, so a
  producer's failure reaches whoever consumes the stream;
* ``timeout=`` on every wait, raising the builtin ``TimeoutError``.

``maxsize`` 0 or ``None`` means unbounded (``send`` never blocks: for ``push_*`` methods that
must not block their caller); otherwise ``send`` blocks while the channel is full
(backpressure).

``ChanStream`` is the consumer half every stream shares: iterate (or ``recv(timeout=)``) what
its owned producer greenlets send, ``close()`` kills them and ends iteration at once.

Greenlets are cooperative, so the state here needs no lock: nothing switches between the
checks and the updates. Each blocked greenlet waits on its own ``gevent.event.Event`` so a
wake-up goes to exactly one waiter (no thundering herd); a waiter that was woken but leaves
without using its turn (timeout, kill) hands the turn on.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

import gevent
from gevent import Greenlet
from gevent.event import Event
from gevent.pool import Group
from greenlet import getcurrent
from loguru import logger

__all__ = ["Chan", "ChanClosed", "ChanEmpty", "ChanFull", "ChanStream"]

T = TypeVar("T")


class ChanClosed(Exception):
    """The channel is closed: nothing more can be sent, and nothing is left to receive."""


class ChanEmpty(Exception):
    """``recv_nowait`` found nothing queued."""


class ChanFull(Exception):
    """``send_nowait`` found a bounded channel full."""


class Chan(Generic[T]):
    """A bounded, closable blocking queue between greenlets.

    ``maxsize`` 0 or ``None`` makes it unbounded (``send`` never blocks); otherwise ``send`` blocks
    while it is full. ``close()`` wakes every waiter: receivers still drain what was queued, then
    get ``ChanClosed`` (iteration simply ends). Every wait takes ``timeout=`` and raises the builtin
    ``TimeoutError`` when it runs out.
    """

    def __init__(self, maxsize: int | None = None) -> None:
        self._maxsize = maxsize or 0
        self._items: collections.deque[T] = collections.deque()
        self._recv_waiters: collections.deque[Event] = collections.deque()
        self._send_waiters: collections.deque[Event] = collections.deque()
        self._closed = False
        self._error: BaseException | None = None

    # -- state ---------------------------------------------------------------------------------

    @property
    def maxsize(self) -> int:
        """0 for unbounded."""
        return self._maxsize

    @property
    def closed(self) -> bool:
        """Whether ``close()`` (or ``close_with_error``) was called."""
        return self._closed

    def qsize(self) -> int:
        """The number of items queued and not yet received."""
        return len(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def full(self) -> bool:
        """Whether a bounded channel holds ``maxsize`` items (always ``False`` when unbounded)."""
        return self._maxsize > 0 and len(self._items) >= self._maxsize

    # -- sending -------------------------------------------------------------------------------

    def send_nowait(self, item: T) -> None:
        """Queue ``item`` or raise ``ChanFull`` / ``ChanClosed`` without blocking."""
        if self._closed:
            raise ChanClosed("send on a closed channel")
        if self.full():
            raise ChanFull()
        self._items.append(item)
        _wake_one(self._recv_waiters)

    def send(self, item: T, timeout: float | None = None) -> None:
        """Queue ``item``, blocking while the channel is full.

        Raises ``ChanClosed`` if the channel is closed (also when it closes while waiting) and
        ``TimeoutError`` when ``timeout`` seconds pass first.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._closed and self.full():
            self._wait(self._send_waiters, deadline, "send")
        self.send_nowait(item)
        # more room may remain (a receiver took several items): let the next sender check
        if not self.full():
            _wake_one(self._send_waiters)

    # -- receiving -----------------------------------------------------------------------------

    def recv_nowait(self) -> T:
        """The next item, or ``ChanEmpty``; once closed and drained ``ChanClosed`` (or the
        error given to ``close_with_error``)."""
        if self._items:
            item = self._items.popleft()
            _wake_one(self._send_waiters)
            return item
        if self._closed:
            if self._error is not None:
                raise self._error
            raise ChanClosed("channel closed")
        raise ChanEmpty()

    def recv(self, timeout: float | None = None) -> T:
        """The next item, blocking while empty.

        Raises ``ChanClosed`` once the channel is closed and drained (or re-raises the error
        given to ``close_with_error``), ``TimeoutError`` when ``timeout`` seconds pass first.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._items and not self._closed:
            self._wait(self._recv_waiters, deadline, "recv")
        item = self.recv_nowait()
        if self._items:  # several items were queued while we slept: wake the next receiver
            _wake_one(self._recv_waiters)
        return item

    def drain_nowait(self) -> list[T]:
        """Everything queued right now (possibly nothing), without blocking."""
        items = list(self._items)
        self._items.clear()
        if items:
            for _ in range(min(len(items), len(self._send_waiters))):
                _wake_one(self._send_waiters)
        return items

    def __iter__(self) -> Iterator[T]:
        return self

    def __next__(self) -> T:
        try:
            return self.recv()
        except ChanClosed:
            raise StopIteration from None

    # -- closing -------------------------------------------------------------------------------

    def close(self) -> None:
        """No more sends; wake every waiter. Queued items can still be received."""
        if self._closed:
            return
        self._closed = True
        for waiters in (self._recv_waiters, self._send_waiters):
            while waiters:
                waiters.popleft().set()

    def close_with_error(self, exc: BaseException) -> None:
        """Close; receivers get ``exc`` raised once they drained the queued items."""
        if self._closed:
            return
        self._error = exc
        self.close()

    # -- internals -----------------------------------------------------------------------------

    def _wait(self, waiters: collections.deque[Event], deadline: float | None, op: str) -> None:
        remaining = None if deadline is None else deadline - time.monotonic()
        if remaining is not None and remaining <= 0:
            raise TimeoutError(f"Chan.{op} timed out")
        ev = Event()
        waiters.append(ev)
        try:
            woken = ev.wait(remaining)
        except BaseException:
            # killed while waiting: if we had been woken, give the turn to another waiter
            _discard(waiters, ev)
            if ev.is_set():
                _wake_one(waiters)
            raise
        if not woken:
            _discard(waiters, ev)
            raise TimeoutError(f"Chan.{op} timed out")


def _wake_one(waiters: collections.deque[Event]) -> None:
    if waiters:
        waiters.popleft().set()


def _discard(waiters: collections.deque[Event], ev: Event) -> None:
    try:
        waiters.remove(ev)
    except ValueError:
        pass


class ChanStream(Generic[T]):
    """Base of the blocking streams: a ``Chan`` of output items fed by owned greenlets.

    Subclasses start producers with ``_spawn_producer(fn)``: when ``fn`` returns the output is
    closed (iteration ends once drained); when it raises, the consumer re-raises the error.
    ``close()`` (from any greenlet, also while another one iterates) ends iteration at once,
    drops what is queued and kills the producers.
    """

    def __init__(self, maxsize: int | None = None) -> None:
        self._out: Chan[T] = Chan(maxsize)
        self._group = Group()
        self._closed = False

    @property
    def closed(self) -> bool:
        """Whether ``close()`` was called on the stream."""
        return self._closed

    def __iter__(self) -> Iterator[T]:
        return self

    def __next__(self) -> T:
        if self._closed:
            raise StopIteration
        try:
            return self._out.recv()
        except ChanClosed:
            raise StopIteration from None

    def recv(self, timeout: float | None = None) -> T:
        """The next item. ``TimeoutError`` after ``timeout`` s; ``ChanClosed`` at the end."""
        if self._closed:
            raise ChanClosed("stream closed")
        return self._out.recv(timeout=timeout)

    def close(self) -> None:
        """End the stream at once, from any greenlet.

        Iteration stops (a loop waiting on the stream ends), queued items are dropped and the
        producer greenlets are killed; waits up to 5 s for them to die. Calling it again does
        nothing.
        """
        if self._closed:
            return
        self._closed = True
        self._out.close()
        self._on_close()
        me = getcurrent()
        others = [g for g in list(self._group) if g is not me]
        for g in others:
            g.kill(block=False)
        # the producers only wait on gevent primitives (or to_thread): they die promptly
        gevent.joinall(others, timeout=5)

    def _on_close(self) -> None:
        """Hook: release inputs (close input channels, inner streams) before the kill."""

    def __enter__(self: _S) -> _S:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _spawn(self, fn: Callable[..., Any], *args: Any) -> Greenlet:
        return self._group.spawn(fn, *args)

    def _spawn_producer(self, fn: Callable[[], None]) -> Greenlet:
        return self._spawn(self._produce, fn)

    def _produce(self, fn: Callable[[], None]) -> None:
        try:
            fn()
        except gevent.GreenletExit:
            raise
        except Exception as exc:
            # the consumer re-raises it; debug only, to avoid reporting it twice
            logger.opt(exception=True).debug("{} failed", type(self).__name__)
            self._out.close_with_error(exc)
        else:
            self._out.close()


_S = TypeVar("_S", bound="ChanStream[Any]")
