"""The one module that touches asyncio and native threads.

``livekit.rtc`` is asyncio code over a Rust core that calls back from native threads. Everything
else in syncagents is greenlets on one gevent hub. This module owns the crossing:

* an asyncio event loop on a native thread, started with gevent's *unpatched* primitives and
  a real selector, so livekit sees an ordinary loop (an asyncio loop inside a greenlet misses
  wake-ups, asyncio-gevent #17); its default executor (DNS lookups for aiohttp,
  ``asyncio.to_thread``) runs each call on a native thread with unpatched functions;
* :func:`run`: run a coroutine there and block only the calling greenlet, with a timeout, and
  cancellation of the coroutine when the greenlet is killed or times out;
* :class:`BlockingIterator`: drain an async iterator into a bounded buffer that a greenlet
  reads with a plain ``for`` loop (backpressure, one hub wake-up per batch, not per item);
* :func:`post_to_hub`: hand a callback from any native thread to the hub, through one libev
  async watcher (thread-safe by design; never polling);
* :func:`in_greenlet`: the other direction, a coroutine on the loop awaiting a plain function
  run in a greenlet (livekit callbacks that must answer, e.g. RPC handlers);
* :func:`to_thread`: CPU-bound or non-cooperative work on gevent's native thread pool;
* real (unpatched) locks for livekit's FFI client, whose locks are taken from native threads
  (NOTES.md: patched locks there deadlock under load).
"""

from __future__ import annotations

import asyncio
import atexit
import collections
import contextlib
import logging
import types
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from typing import Any, ClassVar, Generic, TypeVar

import gevent
import gevent.event
from gevent import monkey

from ._internals import KindFilter, RoutedFilter

T = TypeVar("T")
_lk_logger = logging.getLogger("livekit")  # livekit.rtc's own logger, for its own messages

_start_new_thread = monkey.get_original("_thread", "start_new_thread")
_allocate_lock = monkey.get_original("_thread", "allocate_lock")
_RLock = monkey.get_original("_thread", "RLock")
_get_ident = monkey.get_original("_thread", "get_ident")


def real_lock() -> Any:
    """A lock that blocks the OS thread (not a greenlet): for state shared with native threads."""
    return _allocate_lock()


# -- native thread → hub ---------------------------------------------------------------------


class _HubPoster:
    """Runs callbacks in the hub that native threads queue, woken by one async watcher."""

    def __init__(self) -> None:
        self.hub = gevent.get_hub()
        self.hub_thread = _get_ident()
        self._pending: collections.deque[tuple[Callable[..., Any], tuple[Any, ...]]] = (
            collections.deque()
        )
        # Unreferenced while nobody waits, so an idle bridge never keeps the process alive;
        # referenced while a greenlet waits on the loop thread, or gevent would declare
        # "this operation would block forever" (LoopExit) with no other watcher active.
        self._watcher = self.hub.loop.async_(ref=False)
        self._watcher.start(self._drain)
        self._waiters = 0

    def hold(self) -> None:
        self._waiters += 1
        if self._waiters == 1:
            self._watcher.ref = True

    def release(self) -> None:
        self._waiters -= 1
        if self._waiters == 0:
            self._watcher.ref = False

    def post(self, fn: Callable[..., Any], *args: Any) -> None:
        self._pending.append((fn, args))  # deque.append is atomic under the GIL
        self._watcher.send()

    def _drain(self) -> None:
        pending = self._pending
        while pending:
            fn, args = pending.popleft()
            try:
                fn(*args)
            except Exception:  # a bad callback must not take the others down
                from loguru import logger

                logger.opt(exception=True).error("callback posted to the hub failed")


# Created at import, in the importing (main) thread: built lazily from a native thread it
# would bind to that thread's hub instead of the one greenlets wait on.
_poster = _HubPoster()


def in_hub_thread() -> bool:
    """Whether the caller runs in the hub's (main) thread, i.e. is a greenlet."""
    return bool(_get_ident() == _poster.hub_thread)


def post_to_hub(fn: Callable[..., Any], *args: Any) -> None:
    """Run ``fn(*args)`` in the hub (main) thread, callable from any thread."""
    if _get_ident() == _poster.hub_thread:
        _poster.hub.loop.run_callback(fn, *args)
    else:
        _poster.post(fn, *args)


@contextlib.contextmanager
def awaiting_threads() -> Iterator[None]:
    """Around a greenlet's wait for something a native thread delivers through
    :func:`post_to_hub`: keeps the hub's wake-up watcher referenced meanwhile (unreferenced,
    gevent would see nothing left to wait for and raise ``LoopExit``)."""
    _poster.hold()
    try:
        yield
    finally:
        _poster.release()


def wait_event(event: gevent.event.Event, timeout: float | None = None) -> bool:
    """``event.wait(timeout)`` for an event that a native thread sets through
    :func:`post_to_hub`."""
    with awaiting_threads():
        return bool(event.wait(timeout))


# -- CPU work on native threads ----------------------------------------------------------------


def to_thread(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run ``fn`` on a native thread; block only the calling greenlet; return or re-raise.

    Bound it with ``gevent.Timeout``: the greenlet stops waiting, the thread finishes its call.
    Code in ``fn`` must not rely on patched primitives (gevent locks, ``time.sleep``): use
    :func:`real_lock` for state it shares.
    """
    # gevent's pool hands a task's exception to hub.handle_error, which prints it with a
    # traceback before the caller re-raises it: the error would show up twice, once as if
    # nobody handled it. The task returns its outcome instead and the caller raises it.
    ok, value = gevent.get_hub().threadpool.apply(_outcome, (fn, args, kwargs))
    if ok:
        return value  # type: ignore[no-any-return]
    try:
        raise value
    finally:
        del value  # the traceback references this frame: no cycle kept alive


def _outcome(
    fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[bool, Any]:
    """``(True, result)`` or ``(False, exception)``: what to_thread's task returns."""
    try:
        return True, fn(*args, **kwargs)
    except BaseException as exc:  # any kind reaches the caller, as a direct call would
        return False, exc


# -- capacity: how many threads each kind of work may take ----------------------------------


class CapacityLimiter:
    """At most ``total`` calls of one kind running on native threads at once.

    gevent's thread pool (behind :func:`to_thread`) does not know who its threads work for:
    without a limit, one plugin's burst (twenty streams decoding at once) takes every thread
    and short calls of other plugins (a VAD window) queue behind it. A plugin runs its
    inference through a limiter sized to what the machine can do in parallel (its CPU cores,
    for a model that keeps one core busy per call); callers beyond that wait here, in FIFO
    order, as greenlets, while the pool's other threads stay free for everyone else.

    A slot is held until the native call has really returned, not only until its caller
    stops waiting (a timeout or a kill): the limit counts threads, not greenlets.
    ``total`` can be changed at any time. Use from greenlets of one hub.
    """

    def __init__(self, total: int, name: str = "") -> None:
        if total < 1:
            raise ValueError("a CapacityLimiter needs a total of at least 1")
        self.name = name
        self._total = int(total)
        self._borrowed = 0
        self._waiters: collections.deque[gevent.event.Event] = collections.deque()

    @property
    def total(self) -> int:
        return self._total

    @total.setter
    def total(self, value: int) -> None:
        if value < 1:
            raise ValueError("a CapacityLimiter needs a total of at least 1")
        self._total = int(value)
        self._grant()  # a larger total lets waiters in now; a smaller one applies as calls end

    @property
    def borrowed(self) -> int:
        """Calls running (or handed a slot) right now."""
        return self._borrowed

    @property
    def waiting(self) -> int:
        """Greenlets waiting for a slot."""
        return len(self._waiters)

    def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """:func:`to_thread` within the limit: waits (this greenlet only) for a slot first."""
        self._acquire()
        try:
            result = gevent.get_hub().threadpool.spawn(_outcome, fn, args, kwargs)
        except BaseException:
            self._release()
            raise
        result.rawlink(self._release)  # when the thread is done, whoever still waits for it
        ok, value = result.get()
        if ok:
            return value  # type: ignore[no-any-return]
        try:
            raise value
        finally:
            del value

    def _acquire(self) -> None:
        if self._borrowed < self._total and not self._waiters:
            self._borrowed += 1
            return
        event = gevent.event.Event()
        self._waiters.append(event)
        try:
            event.wait()
        except BaseException:  # a timeout or a kill while waiting
            if event.is_set():
                self._release()  # the slot was handed over as we left: pass it on
            else:
                self._waiters.remove(event)
            raise

    def _release(self, *_: Any) -> None:
        self._borrowed -= 1
        self._grant()

    def _grant(self) -> None:
        while self._waiters and self._borrowed < self._total:
            self._borrowed += 1
            self._waiters.popleft().set()

    def __repr__(self) -> str:
        return (
            f"CapacityLimiter({self.name!r}, {self._borrowed}/{self._total} busy, "
            f"{len(self._waiters)} waiting)"
        )


def set_thread_pool_size(size: int) -> None:
    """Set how many native threads :func:`to_thread` (gevent's hub thread pool) may use.

    gevent's default is 10. Also settable with the environment variable
    ``SYNCAGENTS_THREADS``, read when syncagents is imported. Sizing rule: at least the sum of
    the :class:`CapacityLimiter` totals of the plugins in use (e.g. pocketsphinx's
    ``max_concurrency``, one per CPU core by default), plus headroom of 2-4 threads for short
    unlimited calls (VAD windows, resampling, DNS lookups, file reads), so a saturated plugin
    never leaves those without a thread.
    """
    if size < 1:
        raise ValueError("the thread pool needs at least 1 thread")
    gevent.get_hub().threadpool.maxsize = int(size)


def thread_pool_size() -> int:
    """The current maximum number of :func:`to_thread` threads."""
    return int(gevent.get_hub().threadpool.maxsize)


def _pool_size_from_env() -> None:
    import os

    value = os.environ.get("SYNCAGENTS_THREADS", "").strip()
    if not value:
        return
    try:
        size = int(value)
        if size < 1:
            raise ValueError
    except ValueError:
        raise ValueError(f"SYNCAGENTS_THREADS must be a positive integer, not {value!r}") from None
    set_thread_pool_size(size)


_pool_size_from_env()


_real_sleep = monkey.get_original("time", "sleep")


def real_sleep(seconds: float) -> None:
    """Sleep the OS thread (for code on native threads; never call it from a greenlet)."""
    _real_sleep(seconds)


def native_thread(fn: Callable[[], Any], name: str = "") -> int:
    """Run ``fn()`` on a new daemon OS thread (not a greenlet); returns its id. ``fn`` must not
    use patched primitives (gevent locks, ``time.sleep``): see :func:`real_lock`,
    :func:`real_sleep`."""
    del name  # _thread has no names; kept for the caller's documentation
    return int(_start_new_thread(fn, ()))


# -- the asyncio loop thread -------------------------------------------------------------------


class _Loop(asyncio.SelectorEventLoop):
    """A selector loop whose self-pipe is made of raw ``_socket`` objects.

    Under ``patch_all`` ``socket.socketpair()`` returns gevent sockets; the loop writes to its
    self-pipe from other threads (``call_soon_threadsafe``), which must never enter gevent.
    """

    def _make_self_pipe(self) -> None:
        import _socket

        self._ssock, self._csock = _socket.socketpair()
        self._ssock.setblocking(False)
        self._csock.setblocking(False)
        self._internal_fds += 1  # type: ignore[attr-defined]
        self._add_reader(self._ssock.fileno(), self._read_from_self)  # type: ignore[attr-defined]

    # Blocking helpers (DNS lookups for aiohttp, ``asyncio.to_thread``) go to the default
    # executor. Under ``patch_all`` a ThreadPoolExecutor's threads are greenlets of a hub that
    # never runs on this thread, and ``socket.getaddrinfo`` is gevent's resolver: such a call
    # never finished here (an aiohttp request to ``localhost`` hung). Each one gets a native
    # thread of its own and the unpatched function instead.
    def run_in_executor(  # type: ignore[override]
        self, executor: Any, func: Callable[..., T], *args: Any
    ) -> asyncio.Future[T]:
        if executor is not None:
            return super().run_in_executor(executor, func, *args)
        future: asyncio.Future[T] = self.create_future()

        def work() -> None:
            try:
                outcome: tuple[Any, BaseException | None] = (func(*args), None)
            except BaseException as exc:  # handed to the awaiting coroutine
                outcome = (None, exc)
            try:
                self.call_soon_threadsafe(_settle, future, *outcome)
            except RuntimeError:  # the loop closed meanwhile: nobody waits any more
                pass

        _start_new_thread(work, ())
        return future

    async def getaddrinfo(  # type: ignore[override]
        self, host: Any, port: Any, *, family: int = 0, type: int = 0, proto: int = 0,
        flags: int = 0,
    ) -> Any:
        return await self.run_in_executor(
            None, _getaddrinfo, host, port, family, type, proto, flags
        )

    async def getnameinfo(self, sockaddr: Any, flags: int = 0) -> Any:  # type: ignore[override]
        return await self.run_in_executor(None, _getnameinfo, sockaddr, flags)


_getaddrinfo = monkey.get_original("socket", "getaddrinfo")
_getnameinfo = monkey.get_original("socket", "getnameinfo")


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.cancelled():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


class _LoopThread:
    def __init__(self) -> None:
        selector = monkey.get_original("selectors", "DefaultSelector")()
        self.loop = _Loop(selector)
        self._started = _allocate_lock()
        self._stopped = _allocate_lock()
        self._started.acquire()
        self._stopped.acquire()
        self.thread_id = _start_new_thread(self._main, ())
        self._started.acquire()  # the loop runs before anyone schedules on it

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.call_soon(self._started.release)
        try:
            self.loop.run_forever()
        finally:
            self._stopped.release()

    def stop(self, timeout: float = 5.0) -> None:
        """Cancel every task, let them unwind, stop the loop and wait for the thread."""
        if self.loop.is_closed():
            return

        async def _cancel_all() -> None:
            me = asyncio.current_task()
            tasks = [t for t in asyncio.all_tasks() if t is not me]
            for task in tasks:
                task.cancel()
            if tasks:
                await asyncio.wait(tasks, timeout=timeout / 2)
            self.loop.stop()

        self.loop.call_soon_threadsafe(lambda: self.loop.create_task(_cancel_all()))
        if self._stopped.acquire(True, timeout):
            self.loop.close()


_loop_thread: _LoopThread | None = None
_loop_lock = _allocate_lock()  # creation may race between the hub and native threads


def loop() -> asyncio.AbstractEventLoop:
    """The bridge's event loop (started on first use)."""
    global _loop_thread
    if _loop_thread is None:
        with _loop_lock:
            if _loop_thread is None:
                livekit_rtc()
                # Create the FFI client first so that our atexit hook, registered after its own,
                # runs before livekit disposes the native runtime (atexit is LIFO).
                from livekit.rtc._ffi_client import FfiClient

                FfiClient.instance  # noqa: B018
                _loop_thread = _LoopThread()
                atexit.register(shutdown)
    return _loop_thread.loop


def running() -> bool:
    """Whether the bridge loop is up, without starting it (for clean-ups that need it only if
    it already runs)."""
    lt = _loop_thread
    return lt is not None and not lt.loop.is_closed()


def in_loop_thread() -> bool:
    return _loop_thread is not None and _get_ident() == _loop_thread.thread_id


_exit_hooks: list[Callable[[], Awaitable[None]]] = []


def add_exit_hook(hook: Callable[[], Awaitable[None]]) -> None:
    """A coroutine function run on the loop before it stops (e.g. disconnect live rooms)."""
    _exit_hooks.append(hook)


def shutdown(timeout: float = 5.0) -> None:
    """Run exit hooks, cancel remaining tasks, stop the loop thread. Idempotent."""
    global _loop_thread
    lt = _loop_thread
    if lt is None or lt.loop.is_closed():
        return
    hooks = list(_exit_hooks)
    _exit_hooks.clear()
    if hooks:
        done = _allocate_lock()
        done.acquire()

        async def _run_hooks() -> None:
            try:
                await asyncio.wait_for(
                    asyncio.gather(*(h() for h in hooks), return_exceptions=True), timeout / 2
                )
            except BaseException:
                pass
            finally:
                done.release()

        lt.loop.call_soon_threadsafe(lambda: lt.loop.create_task(_run_hooks()))
        done.acquire(True, timeout)
    lt.stop(timeout)
    _loop_thread = None
    _dispose_ffi(lt.loop)


def _dispose_ffi(stopped_loop: asyncio.AbstractEventLoop) -> None:
    # Shut livekit's native runtime down now, while the interpreter is whole: its threads call
    # back into Python, and a callback that lands during finalization aborts the process
    # ("panic in a function that cannot unwind", NOTES.md). livekit's own atexit hook then
    # finds it disposed and does nothing.
    from livekit.rtc import _ffi_client

    client = _ffi_client.FfiClient._instance
    if client is None:
        return
    queue = client.queue
    if isinstance(queue, _EventDispatcher):  # subscribers of the closed loop would log per event
        queue.unsubscribe_loop(stopped_loop)
    client._dispose()


# -- greenlet ↔ coroutine ---------------------------------------------------------------------


class _Call(Generic[T]):
    """One coroutine run for one waiting greenlet; its result crosses back through the poster."""

    __slots__ = ("cancelled", "coro", "result", "task")

    def __init__(self, coro: Coroutine[Any, Any, T]) -> None:
        self.coro = coro
        self.task: asyncio.Task[T] | None = None
        self.cancelled = False
        self.result: gevent.event.AsyncResult = gevent.event.AsyncResult()

    # loop thread
    def start(self) -> None:
        if self.cancelled:
            self.coro.close()
            return
        self.task = _keep(asyncio.ensure_future(self.coro))
        self.task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[T]) -> None:
        if task.cancelled():
            post_to_hub(self.result.set_exception, _Cancelled())
            return
        exc = task.exception()
        if exc is not None:
            post_to_hub(self.result.set_exception, exc)
        else:
            post_to_hub(self.result.set, task.result())

    def cancel(self) -> None:
        self.cancelled = True
        if self.task is not None:
            self.task.cancel()

    def abandon(self, cleanup: Callable[[], Awaitable[Any]] | None) -> None:
        """Nobody waits any more, but the coroutine runs to its end (loop thread); then, if
        it succeeded, ``cleanup()`` undoes what it did."""
        def finished(task: asyncio.Task[Any]) -> None:
            if cleanup is not None and not task.cancelled() and task.exception() is None:
                submit(_awaited(cleanup))

        if self.task is None:  # not started yet: nothing to undo, nothing to run
            self.cancel()
        else:
            self.task.add_done_callback(finished)


async def _awaited(fn: Callable[[], Awaitable[Any]]) -> None:
    await fn()


class _Cancelled(Exception):
    """The coroutine was cancelled on the loop side (e.g. by shutdown)."""


# What a coroutine raises when it runs out of time: the builtin, and on Python 3.10 asyncio's
# own class too (one class from 3.11 on). For callers that turn it into the builtin.
TIMEOUT_ERRORS: tuple[type[BaseException], ...] = (TimeoutError, asyncio.TimeoutError)


def run(
    coro: Coroutine[Any, Any, T],
    timeout: float | None = None,
    *,
    cancel: bool = True,
    undo: Callable[[], Awaitable[Any]] | None = None,
) -> T:
    """Run ``coro`` on the bridge loop; block only this greenlet; return or re-raise.

    On timeout the coroutine is cancelled and the builtin ``TimeoutError`` raised. If this
    greenlet is killed while waiting, the coroutine is cancelled too. With ``cancel=False``
    it runs to its end instead, and ``undo()`` runs after it if it succeeded (a room connect
    must not be cancelled half-way: livekit's native side then waits for a readiness signal
    that never comes and ends the whole process).
    """
    lp = loop()
    if in_loop_thread():
        coro.close()
        raise RuntimeError("bridge.run() called from the loop thread")
    call: _Call[T] = _Call(coro)
    lp.call_soon_threadsafe(call.start)
    _poster.hold()
    try:
        call.result.wait(timeout)
    except BaseException:
        # GreenletExit (killed), an outer gevent.Timeout, KeyboardInterrupt: stop the work too
        if not lp.is_closed():
            lp.call_soon_threadsafe(call.cancel if cancel else call.abandon, *(
                () if cancel else (undo,)))
        raise
    finally:
        _poster.release()
    if not call.result.ready():
        lp.call_soon_threadsafe(call.cancel if cancel else call.abandon, *(
            () if cancel else (undo,)))
        raise TimeoutError(f"timed out after {timeout} s")
    return call.result.get()  # type: ignore[no-any-return]


def call(fn: Callable[..., T], *args: Any, timeout: float | None = None) -> T:
    """Run a plain function on the loop thread (livekit objects that grab the running loop in
    their constructor must be built there) and return its result."""

    async def _wrapper() -> T:
        return fn(*args)

    return run(_wrapper(), timeout=timeout)


# The event loop holds its tasks weakly: a task nobody else references can be collected
# mid-flight. Every task the bridge starts is kept here until it is done.
_tasks: set[asyncio.Task[Any]] = set()


def _keep(task: asyncio.Task[Any]) -> asyncio.Task[Any]:
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)
    return task


def submit(coro: Coroutine[Any, Any, Any]) -> None:
    """Fire and forget: schedule ``coro`` on the loop; failures are logged, never raised."""

    def _start() -> None:
        task = _keep(asyncio.ensure_future(coro))
        task.add_done_callback(_log_failure)

    loop().call_soon_threadsafe(_start)


def call_soon(fn: Callable[..., Any], *args: Any) -> None:
    """Schedule a plain callback on the loop thread."""
    loop().call_soon_threadsafe(fn, *args)


def _log_failure(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        from loguru import logger

        exc = task.exception()
        logger.opt(exception=exc).error("background livekit task failed: {}", exc)


class GreenletEnded(Exception):
    """What :func:`in_greenlet` raises on the loop when the greenlet ended with something that is
    not an ``Exception`` (killed, ``SystemExit``, ``KeyboardInterrupt``); ``cause`` is it."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(f"greenlet ended by {type(cause).__name__}")
        self.cause = cause


async def in_greenlet(spawn: Callable[..., Any], fn: Callable[..., T], *args: Any) -> T:
    """From a coroutine on the loop: run ``fn(*args)`` in a greenlet that ``spawn(fn)`` starts
    in the hub, and await its result or exception (callbacks livekit awaits, e.g. RPC handlers,
    written as plain blocking functions).

    Cancelling the awaiting task kills the greenlet. An ``Exception`` reaches the awaiting task
    as is; anything else arrives as :class:`GreenletEnded` and is re-raised in the greenlet, so
    the greenlet's owner (a job) still sees it. If ``spawn`` itself fails (e.g. the job ended),
    that error is raised here.
    """
    lp = asyncio.get_running_loop()
    future: asyncio.Future[T] = lp.create_future()
    greenlets: list[Any] = []
    cancelled = False

    def settle(result: Any, error: BaseException | None) -> None:  # hub → loop
        try:
            lp.call_soon_threadsafe(_settle, future, result, error)
        except RuntimeError:  # the loop closed meanwhile: nobody waits any more
            pass

    def body() -> None:  # the greenlet
        try:
            result = fn(*args)
        except Exception as exc:
            settle(None, exc)
            return
        except BaseException as exc:
            settle(None, GreenletEnded(exc))
            raise
        settle(result, None)

    def start() -> None:  # hub
        if cancelled:
            return
        try:
            greenlets.append(spawn(body))
        except Exception as exc:
            settle(None, exc)

    def kill() -> None:  # hub
        for g in greenlets:
            g.kill(block=False)

    post_to_hub(start)
    try:
        return await future
    except asyncio.CancelledError:
        cancelled = True
        post_to_hub(kill)
        raise


# Waking a waiting reader greenlet is a cross-thread hand-off: an eventfd write, a context
# switch to the hub thread and a GIL transfer, several times the cost of the item itself on
# this kind of machine (it made a 10 ms frame burst cost 1.3-1.4x plain asyncio). An item that
# arrives within _BURST_GAP of the previous one is part of a burst: the reader is woken once
# for the batch, at most _BURST_GAP later (or at once when _BURST_ITEMS are waiting). Items
# further apart, as in a real-time 10 ms stream, wake it at once, as before.
_BURST_GAP = 0.001
_BURST_ITEMS = 16
_monotonic = monkey.get_original("time", "monotonic")


class BlockingIterator(Generic[T]):
    """A greenlet-side ``for`` loop over an async iterator running on the bridge loop.

    A pump task reads the async iterator into a deque of at most ``maxsize`` items; when the
    deque is full the pump waits (backpressure reaches the producer instead of growing a queue).
    The greenlet drains the deque without any round trip, and the hub is woken only when the
    greenlet is actually waiting, once per batch (a burst's items are batched for up to
    ``_BURST_GAP``): that is what keeps the per-item cost close to plain asyncio (NOTES.md).
    ``close()`` may come from any greenlet; a loop waiting on the iterator then ends.
    """

    def __init__(
        self,
        make_aiter: Callable[[], AsyncIterator[T]],
        maxsize: int = 64,
        on_close: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._items: collections.deque[T] = collections.deque()
        self._maxsize = max(1, maxsize)
        self._done = False  # pump finished (exhausted, failed or closed)
        self._error: BaseException | None = None
        self._closed = False
        self._waiting = False  # the greenlet sleeps on _wake: the pump must post a wake-up
        self._wake = gevent.event.Event()
        self._space: asyncio.Event | None = None  # loop side: set when the deque has room
        self._pump_waiting = False
        self._wake_timer: asyncio.TimerHandle | None = None  # loop side: a burst's wake-up
        self._finishing = False  # loop side: the pump ended and runs on_close
        self._on_close = on_close
        self._task: asyncio.Task[None] | None = None
        self._make_aiter = make_aiter
        call_soon(self._start)

    # -- loop thread --
    def _start(self) -> None:
        if self._closed:
            self._finish(None)
            return
        self._space = asyncio.Event()
        self._task = _keep(asyncio.ensure_future(self._pump()))

    async def _pump(self) -> None:
        assert self._space is not None
        error: BaseException | None = None
        loop = asyncio.get_running_loop()
        last = 0.0  # when the previous item came
        try:
            ait = self._make_aiter()
            async for item in ait:
                self._items.append(item)
                now = _monotonic()
                if self._waiting:
                    if now - last >= _BURST_GAP or len(self._items) >= _BURST_ITEMS:
                        self._wake_reader()
                    elif self._wake_timer is None:
                        self._wake_timer = loop.call_at(now + _BURST_GAP, self._wake_burst)
                last = now
                while len(self._items) >= self._maxsize and not self._closed:
                    self._space.clear()
                    self._pump_waiting = True
                    if len(self._items) < self._maxsize:  # drained meanwhile
                        self._pump_waiting = False
                        break
                    await self._space.wait()
                if self._closed:
                    break
        except asyncio.CancelledError:
            pass
        except BaseException as exc:  # delivered to the reader, not lost on the loop thread
            error = exc
        finally:
            # from here on, close() must not cancel this task: what on_close awaits (livekit's
            # own stream task, in aclose) would be cancelled with it and never unsubscribe
            self._finishing = True
            if self._wake_timer is not None:
                self._wake_timer.cancel()
            if self._on_close is not None:
                try:
                    await self._on_close()
                except Exception:
                    pass
            self._finish(error)

    def _wake_reader(self) -> None:
        self._waiting = False
        if self._wake_timer is not None:
            self._wake_timer.cancel()
            self._wake_timer = None
        post_to_hub(self._wake.set)

    def _wake_burst(self) -> None:  # the burst's timer
        self._wake_timer = None
        if self._waiting and self._items:
            self._wake_reader()

    def _finish(self, error: BaseException | None) -> None:
        self._error = error
        self._done = True
        post_to_hub(self._wake.set)

    def _make_space(self) -> None:
        if self._space is not None:
            self._space.set()

    # -- greenlet side --
    def __iter__(self) -> Iterator[T]:
        return self

    def __next__(self) -> T:
        return self.next(timeout=None)

    def next(self, timeout: float | None = None) -> T:
        items = self._items
        while not items:
            if self._done or self._closed:
                if self._error is not None:
                    err, self._error = self._error, None
                    raise err
                raise StopIteration
            self._wake.clear()
            self._waiting = True
            if items or self._done:
                self._waiting = False
                continue
            if not wait_event(self._wake, timeout):
                self._waiting = False
                raise TimeoutError(f"no item within {timeout} s")
        item = items.popleft()
        if self._pump_waiting and len(items) < self._maxsize // 2 + 1:
            self._pump_waiting = False
            call_soon(self._make_space)
        return item

    def close(self) -> None:
        """Stop the pump and end every loop waiting on this iterator (any greenlet)."""
        if self._closed:
            return
        self._closed = True
        self._items.clear()
        self._wake.set()
        if _loop_thread is not None and not _loop_thread.loop.is_closed():
            call_soon(self._cancel)

    def _cancel(self) -> None:
        if self._task is not None and not self._finishing:
            self._task.cancel()
        if self._space is not None:
            self._space.set()

    @property
    def closed(self) -> bool:
        return self._closed or (self._done and not self._items)


# -- livekit's FFI event queue, indexed by handle ---------------------------------------------
#
# livekit's ``FfiQueue.put`` runs every subscriber's filter on every event, on the native
# callback thread and under the GIL: each AudioStream, VideoStream, capture in flight and room
# is a subscriber, so with N streams every 10 ms frame costs N filter calls (O(N²) per second
# in all: with 200 streams, 400 lambda calls per frame). The filters livekit passes are lambdas of a
# few known shapes (verified at import by ``_internals.livekit_event_filters``); the dispatcher
# below reads each subscriber's handle from its filter's closure and routes an event with one
# dict lookup. Subscribers it cannot index (no filter, unknown filters) get what livekit would
# give them, filters run as livekit runs them.


class _Inbox:
    """FFI events bound for one asyncio loop, handed over in batches.

    livekit makes one ``call_soon_threadsafe`` per event and subscriber: a write to the loop's
    self-pipe and a wake-up of its thread each time. Here the first event of a batch schedules
    one drain, and events that arrive before the loop runs it ride along, in order.

    Events are queued under the dispatcher's lock (their order is the lock's order, as in
    livekit) and the drain scheduled after it is released: the self-pipe write lets go of the
    GIL, and the loop thread, then free to run, would block on the lock in (un)subscribe
    (every capture_frame does both), two more context switches per frame.
    """

    __slots__ = ("items", "loop", "scheduled", "users")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.items: collections.deque[tuple[Any, Any]] = collections.deque()
        self.scheduled = False
        self.users = 0  # subscribers on this loop; the inbox is dropped with the last one

    def add(self, queue: Any, item: Any) -> bool:  # any thread, under the dispatcher's lock
        """Queue ``item`` for ``queue``; True if the caller must then :meth:`kick` the loop."""
        self.items.append((queue, item))
        if self.scheduled:
            return False
        self.scheduled = True
        return True

    def kick(self) -> None:  # any thread, after the dispatcher's lock is released
        try:
            self.loop.call_soon_threadsafe(self.drain)
        except Exception as exc:  # the loop closed under its subscribers: as livekit does
            self.scheduled = False
            self.items.clear()
            _lk_logger.error("error putting to queue: %s", exc)

    def drain(self) -> None:  # loop thread
        # cleared first: an event pushed from now on schedules a drain of its own (no loss)
        self.scheduled = False
        items = self.items
        while items:
            queue, item = items.popleft()
            try:
                queue.put_nowait(item)
            except Exception as exc:  # one full or broken queue must not starve the others
                _lk_logger.error("error putting to queue: %s", exc)


class _Subscriber:
    __slots__ = ("cell", "excluded", "filter_fn", "gone", "inbox", "key", "kind", "queue",
                 "run_filter", "seq", "wildcard")

    def __init__(self, seq: int, queue: Any, inbox: _Inbox, filter_fn: Any) -> None:
        self.seq = seq
        self.queue = queue
        self.inbox = inbox
        self.filter_fn = filter_fn
        self.kind: str | None = None  # routed: the event kind it takes
        self.cell: Any = None  # routed: the filter's closure cell holding its id
        self.key: Any = None  # routed: its id, once known
        self.wildcard = False  # routed, id not known yet: takes every event of its kind
        self.excluded: frozenset[str | None] = frozenset()  # general: kinds it never takes
        self.run_filter = False  # general: a filter the dispatcher does not know, run it
        self.gone = False  # unsubscribed


class _EventDispatcher(Generic[T]):
    """Stands in for livekit's ``FfiQueue`` (same methods and meaning; installed by
    :func:`livekit_rtc`): each event reaches exactly the subscribers livekit's filters would
    pass it to, in subscription order, found with one dict lookup for media events."""

    # filled by livekit_rtc() from what _internals verified: filter code → what it does
    specs: ClassVar[dict[Any, Any]] = {}
    routes: ClassVar[dict[str, str]] = {}  # routed event kind → the id field it is routed by
    queue_cls: ClassVar[Any] = None  # livekit's Queue, what subscribe() returns

    def __init__(self) -> None:
        self._lock = _RLock()  # taken on native threads: must be a real lock (NOTES.md)
        self._subs: dict[int, _Subscriber] = {}  # by id(queue), in subscription order
        self._seq = 0
        # Index entries are tuples, replaced (never changed) on (un)subscribe: put() iterates
        # them while an allocation can run the GC, whose finalizers (livekit's __del__) may
        # unsubscribe on this very thread, the lock being re-entrant.
        self._owners: dict[tuple[str, Any], tuple[_Subscriber, ...]] = {}  # (kind, id) → owners
        self._pending: dict[str, tuple[_Subscriber, ...]] = {}  # kind → routed, id not known yet
        self._general: dict[int, _Subscriber] = {}  # the rest (no filter, room, unknown)
        self._general_for: dict[str | None, tuple[_Subscriber, ...]] = {}  # cache per kind
        self._inboxes: dict[asyncio.AbstractEventLoop, _Inbox] = {}

    # -- livekit's FfiQueue interface --
    def put(self, item: Any) -> None:
        kind = item.WhichOneof("message")
        with self._lock:
            general = self._general_for.get(kind)
            if general is None:
                everyone = list(self._general.values())  # a snapshot, see __init__
                general = tuple(s for s in everyone if kind not in s.excluded)
                self._general_for[kind] = general
            field = self.routes.get(kind)
            if field is None:
                targets: Any = general
            else:
                pending = self._pending.get(kind, ())
                if pending:
                    pending = self._promote(kind, pending)
                owners = self._owners.get((kind, getattr(getattr(item, kind), field)), ())
                if pending or general:
                    waiting = [s for s in pending if s.wildcard]
                    targets = sorted([*owners, *waiting, *general], key=_seq_of)
                else:
                    targets = owners
            kick: list[_Inbox] = []
            for sub in targets:
                if sub.run_filter:
                    try:
                        if not sub.filter_fn(item):
                            continue
                    except Exception:
                        pass  # livekit delivers an event its filter failed on
                if sub.inbox.add(sub.queue, item):
                    kick.append(sub.inbox)
        for inbox in kick:  # outside the lock: see _Inbox
            inbox.kick()

    def subscribe(
        self, loop: asyncio.AbstractEventLoop | None = None, filter_fn: Any = None
    ) -> Any:
        with self._lock:
            queue = self.queue_cls()
            self._adopt(queue, loop or asyncio.get_event_loop(), filter_fn)
            return queue

    def _adopt(self, queue: Any, loop: asyncio.AbstractEventLoop, filter_fn: Any) -> None:
        with self._lock:
            inbox = self._inboxes.get(loop)
            if inbox is None:
                inbox = self._inboxes[loop] = _Inbox(loop)
            inbox.users += 1
            self._seq += 1
            sub = _Subscriber(self._seq, queue, inbox, filter_fn)
            self._subs[id(queue)] = sub
            spec = self.specs.get(getattr(filter_fn, "__code__", None))
            if isinstance(spec, RoutedFilter) and self._route(sub, spec):
                return
            if isinstance(spec, KindFilter):
                sub.excluded = spec.excluded
            elif filter_fn is not None:
                sub.run_filter = True
            self._general[sub.seq] = sub
            self._general_for.clear()

    def unsubscribe(self, queue: Any) -> None:
        with self._lock:
            sub = self._subs.pop(id(queue), None)
            if sub is None:
                return
            sub.gone = True
            if sub.kind is None:
                del self._general[sub.seq]
                self._general_for.clear()
            elif sub.key is not None:
                _without(self._owners, (sub.kind, sub.key), sub)
            else:
                _without(self._pending, sub.kind, sub)
            sub.inbox.users -= 1
            if sub.inbox.users == 0 and self._inboxes.get(sub.inbox.loop) is sub.inbox:
                del self._inboxes[sub.inbox.loop]

    @property
    def _subscribers(self) -> list[tuple[Any, asyncio.AbstractEventLoop, Any]]:
        """livekit's view: (queue, loop, filter) per subscriber, in subscription order."""
        with self._lock:
            return [(s.queue, s.inbox.loop, s.filter_fn) for s in self._subs.values()]

    # -- ours --
    def unsubscribe_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        """Drop every subscriber bound to ``loop`` (closed: events for it would only log)."""
        with self._lock:
            for sub in [s for s in self._subs.values() if s.inbox.loop is loop]:
                self.unsubscribe(sub.queue)

    def _route(self, sub: _Subscriber, spec: RoutedFilter) -> bool:
        """Index ``sub`` by its filter's id; False if the closure is not as verified."""
        try:
            cell = sub.filter_fn.__closure__[0]
            key = cell.cell_contents
        except (AttributeError, IndexError, TypeError, ValueError):
            return False
        sub.kind, sub.cell, sub.wildcard = spec.kind, cell, spec.none_matches_all
        if key is None:
            self._pending[spec.kind] = (*self._pending.get(spec.kind, ()), sub)
        else:
            sub.key = key
            self._owners[(spec.kind, key)] = (*self._owners.get((spec.kind, key), ()), sub)
        return True

    def _promote(self, kind: str, pending: tuple[_Subscriber, ...]) -> tuple[_Subscriber, ...]:
        """Index the pending subscribers whose id got known (livekit sets it once its request
        returned); the ones still waiting."""
        for sub in pending:
            key = sub.cell.cell_contents
            if key is not None and not sub.gone:
                _without(self._pending, kind, sub)
                sub.key = key
                self._owners[(kind, key)] = (*self._owners.get((kind, key), ()), sub)
        return self._pending.get(kind, ())


def _without(index: dict[Any, tuple[_Subscriber, ...]], key: Any, sub: _Subscriber) -> None:
    rest = tuple(s for s in index.get(key, ()) if s is not sub)
    if rest:
        index[key] = rest
    else:
        index.pop(key, None)


def _seq_of(sub: _Subscriber) -> int:
    return sub.seq


def _install_dispatcher(ffi_client: Any, specs: dict[types.CodeType, Any]) -> None:
    """Make livekit's FFI client use :class:`_EventDispatcher` (the one it has, if any, too)."""
    from livekit.rtc._utils import Queue

    _EventDispatcher.specs = specs
    _EventDispatcher.routes = {
        s.kind: s.field for s in specs.values() if isinstance(s, RoutedFilter)
    }
    _EventDispatcher.queue_cls = Queue
    ffi_client.FfiQueue = _EventDispatcher  # FfiClient.__init__ builds its queue from it
    client = ffi_client.FfiClient._instance
    if client is not None and not isinstance(client._queue, _EventDispatcher):
        # someone used the FFI before us: carry its subscribers over, in order
        old = client._queue
        with old._lock:
            new: _EventDispatcher[Any] = _EventDispatcher()
            for queue, loop, filter_fn in old._subscribers:
                new._adopt(queue, loop, filter_fn)
            client._queue = new


# -- livekit.rtc preparation ------------------------------------------------------------------

_lk_prepared = False


def livekit_rtc() -> types.ModuleType:
    """Import ``livekit.rtc`` with real locks in its FFI client; return the module.

    FfiQueue/FfiClient take their locks from the Rust callback thread and the asyncio thread.
    Under ``patch_all`` ``threading.RLock`` is a gevent lock, and two native threads blocked on
    it forever under load (NOTES.md). ``get_original('_thread', ...)`` gives the C locks
    (``get_original('threading', ...)``'s RLock would still fall back to a patched lock).
    This must run before the first FFI use, so every syncagents path to livekit.rtc goes here.
    """
    global _lk_prepared
    import livekit.rtc as lk_rtc
    from livekit.rtc import _ffi_client

    if not _lk_prepared:
        from livekit.rtc._proto import ffi_pb2

        from ._internals import check_livekit, livekit_event_filters

        # fail loudly if livekit moved what we rely on
        check_livekit(_ffi_client, lk_rtc.AudioSource)
        specs = livekit_event_filters(ffi_pb2.FfiEvent)
        _lk_prepared = True
        _ffi_client.threading = types.SimpleNamespace(  # type: ignore[assignment]
            RLock=_RLock, Lock=_allocate_lock
        )
        _ffi_client.FfiClient._instance_lock = _allocate_lock()
        client = _ffi_client.FfiClient._instance
        if client is not None:  # someone used the FFI before us: swap the live locks too
            client._lock = _RLock()
        _install_dispatcher(_ffi_client, specs)  # its lock is a real one too
    return lk_rtc


def pending_tasks() -> int:
    """Tasks alive on the bridge loop (for tests and diagnostics)."""
    if _loop_thread is None or _loop_thread.loop.is_closed():
        return 0

    async def _count() -> int:
        me = asyncio.current_task()
        return sum(1 for t in asyncio.all_tasks() if t is not me and not t.done())

    return run(_count(), timeout=5)
