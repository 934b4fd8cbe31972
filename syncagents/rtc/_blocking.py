"""Shared glue for the facade: the livekit module, and blocking passthrough of async methods."""

from __future__ import annotations

import inspect
import weakref
from collections.abc import Iterator
from typing import Any, TypeVar

from .. import _bridge
from ._registry import facade

lk = _bridge.livekit_rtc()


_live: weakref.WeakSet[Any] = weakref.WeakSet()
_hook_installed = False


def track_for_exit(obj: Any) -> None:
    """Close ``obj`` (its ``_aclose_for_exit`` coroutine) before the bridge loop stops, so the
    native side stops calling back before the runtime is disposed."""
    global _hook_installed
    if not _hook_installed:
        _hook_installed = True
        _bridge.add_exit_hook(_close_live)
    _live.add(obj)


async def _close_live() -> None:
    for obj in list(_live):
        try:
            await obj._aclose_for_exit()
        except Exception:
            pass


def unwrap(obj: Any) -> Any:
    """The livekit object behind a facade object (or the object itself)."""
    return getattr(obj, "_lk", obj)


class BlockingProxy:
    """Exposes a livekit object's attributes; its ``async`` methods become blocking calls.

    Used for objects whose every method we don't wrap by hand, so nothing of livekit's surface
    is lost while nothing public is ``async``: a coroutine function becomes a blocking one (with
    an optional ``timeout=``), an async property (livekit's ``Room.sid``) is awaited, and
    livekit participants, publications and tracks come back as their facades.
    """

    _lk: Any

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name == "_lk":
            raise AttributeError(name)
        target = self.__dict__.get("_lk")
        if target is None:
            raise AttributeError(name)
        attr = getattr(target, name)
        if inspect.iscoroutine(attr):
            return facade(_bridge.run(attr))
        if inspect.iscoroutinefunction(attr):

            def blocking(*args: Any, timeout: float | None = None, **kwargs: Any) -> Any:
                return facade(_bridge.run(attr(*args, **kwargs), timeout=timeout))

            blocking.__name__ = name
            blocking.__doc__ = attr.__doc__
            return blocking
        return facade(attr)


def mirror(name: str, doc: str) -> Any:
    """A read-only property showing the livekit object's attribute ``name`` (plain data)."""

    def get(self: Any) -> Any:
        return getattr(self._lk, name)

    # on the getter too: tools that read ``fget.__doc__`` (the docstring check) see it
    get.__doc__ = doc
    return property(get, doc=doc)


class BlockingStream:
    """A facade stream read with a plain ``for`` loop: the iterator protocol, ``next(timeout=)``,
    ``close()`` (from any greenlet: a loop waiting on it ends) and ``with`` use, over the
    ``_bridge.BlockingIterator`` a subclass stores in ``self._it``."""

    _it: _bridge.BlockingIterator[Any]

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        return self._it.next()

    def next(self, timeout: float | None = None) -> Any:
        """The next item; ``TimeoutError`` after ``timeout`` s without one."""
        return self._it.next(timeout=timeout)

    def close(self) -> None:
        """Stop the stream; a loop waiting on it ends (any greenlet)."""
        self._it.close()

    def __del__(self) -> None:
        # an abandoned stream must not keep its pump and livekit task alive forever
        it = self.__dict__.get("_it")
        if it is not None:
            it.close()

    def __enter__(self: _S) -> _S:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_S = TypeVar("_S", bound=BlockingStream)
