"""The one module that touches asyncio and native threads.

``livekit.rtc`` is asyncio code over a Rust core that calls back from native threads. Everything
else in syncagents is greenlets on one gevent hub. This module owns the crossing:

* an asyncio event loop on a native thread, started with gevent's *unpatched* primitives and
  a real selector, so livekit sees an ordinary loop (an asyncio loop inside a greenlet misses
  wake-ups, asyncio-gevent #17);
* :func:`run`: run a coroutine there and block only the calling greenlet, with a timeout, and
  cancellation of the coroutine when the greenlet is killed or times out;
* :class:`BlockingIterator`: drain an async iterator into a bounded buffer that a greenlet
  reads with a plain ``for`` loop (backpressure, one hub wake-up per batch, not per item);
* :func:`post_to_hub`: hand a callback from any native thread to the hub, through one libev
  async watcher (thread-safe by design; never polling);
* :func:`to_thread`: CPU-bound or non-cooperative work on gevent's native thread pool;
* real (unpatched) locks for livekit's FFI client, whose locks are taken from native threads
  (NOTES.md: patched locks there deadlock under load).
"""

from __future__ import annotations

import asyncio
import atexit
import collections
import sys
import types
from typing import Any, AsyncIterator, Awaitable, Callable, Coroutine, Generic, Iterator, TypeVar

import gevent
import gevent.event
from gevent import monkey

T = TypeVar("T")

_start_new_thread = monkey.get_original("_thread", "start_new_thread")
_allocate_lock = monkey.get_original("_thread", "allocate_lock")
_RLock = monkey.get_original("_thread", "RLock")
_get_ident = monkey.get_original("_thread", "get_ident")


def real_lock() -> Any:
    """A lock that blocks the OS thread (not a greenlet): for state shared with native threads."""
    return _allocate_lock()


def real_rlock() -> Any:
    return _RLock()


# -- native thread → hub ---------------------------------------------------------------------


class _HubPoster:
    """Runs callbacks in the hub that native threads queue, woken by one async watcher."""

    def __init__(self) -> None:
        self.hub = gevent.get_hub()
        self.hub_thread = _get_ident()
        self._pending: collections.deque[tuple[Callable[..., Any], tuple[Any, ...]]] = (
            collections.deque()
        )
        # ref=False: a pending wake-up must not keep the hub (and so the process) alive.
        self._watcher = self.hub.loop.async_(ref=False)
        self._watcher.start(self._drain)

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


_poster: _HubPoster | None = None


def _hub_poster() -> _HubPoster:
    global _poster
    if _poster is None:
        _poster = _HubPoster()
    return _poster


def post_to_hub(fn: Callable[..., Any], *args: Any) -> None:
    """Run ``fn(*args)`` in the hub (main) thread, callable from any thread."""
    poster = _hub_poster()
    if _get_ident() == poster.hub_thread:
        poster.hub.loop.run_callback(fn, *args)
    else:
        poster.post(fn, *args)


# -- CPU work on native threads ----------------------------------------------------------------


def to_thread(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run ``fn`` on a native thread; block only the calling greenlet; return or re-raise.

    Bound it with ``gevent.Timeout``: the greenlet stops waiting, the thread finishes its call.
    Code in ``fn`` must not rely on patched primitives (gevent locks, ``time.sleep``): use
    :func:`real_lock` for state it shares.
    """
    pool = gevent.get_hub().threadpool
    if kwargs:
        return pool.apply(fn, args, kwargs)  # type: ignore[no-any-return]
    return pool.apply(fn, args)  # type: ignore[no-any-return]


def set_thread_pool_size(size: int) -> None:
    gevent.get_hub().threadpool.maxsize = max(1, size)


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
        _lk_prepared = True
        _ffi_client.threading = types.SimpleNamespace(  # type: ignore[attr-defined]
            RLock=_RLock, Lock=_allocate_lock
        )
        _ffi_client.FfiClient._instance_lock = _allocate_lock()
        client = _ffi_client.FfiClient._instance
        if client is not None:  # someone used the FFI before us: swap the live locks too
            client._lock = _RLock()
            client._queue._lock = _RLock()
    return lk_rtc
