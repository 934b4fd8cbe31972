"""RPC handlers as plain functions run in greenlets.

livekit awaits an RPC handler on its asyncio thread and answers the caller with what it returns
or raises. Here the handler is a plain blocking function ``(data: RpcInvocationData) -> str``:
livekit gets a small coroutine that runs it in a greenlet spawned like a room event handler
(so it belongs to the job) and awaits the outcome. ``RpcError`` raised by the handler reaches
the caller as is; any other exception becomes livekit's standard "Application error"; when the
caller's deadline passes or the room disconnects, livekit cancels the coroutine and the
greenlet is killed.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any

import gevent

from .. import _bridge
from ._blocking import lk

RpcError = lk.RpcError
RpcInvocationData = lk.RpcInvocationData

RpcHandler = Callable[[Any], Any]


def check_method_name(method: Any) -> None:
    """``ValueError`` unless ``method`` is a non-empty str."""
    if not isinstance(method, str) or not method:
        raise ValueError(f"an RPC method name must be a non-empty str, got {method!r}")


def check_handler(method: str, handler: Any) -> None:
    """One clear error for what cannot be an RPC handler here."""
    check_method_name(method)
    if not callable(handler):
        raise TypeError(f"RPC handler for {method!r} must be callable, got {handler!r}")
    if inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(
        getattr(handler, "__call__", None)  # noqa: B004  (an object with an async __call__)
    ):
        raise TypeError(
            f"RPC handler for {method!r} is async; syncagents runs plain functions "
            "(data: RpcInvocationData) -> str in their own greenlet"
        )


def invoker(
    method: str, handler: RpcHandler, spawn: Callable[..., gevent.Greenlet]
) -> Callable[[Any], Awaitable[str | None]]:
    """The coroutine function livekit registers for ``method``."""

    async def invoke(data: Any) -> str | None:
        try:
            return await _bridge.in_greenlet(spawn, _call, method, handler, data)
        except _bridge.GreenletEnded as ended:
            # killed with its job, or SystemExit in the handler: the caller still gets an
            # answer now instead of waiting for its timeout
            code = (
                RpcError.ErrorCode.RECIPIENT_DISCONNECTED
                if isinstance(ended.cause, gevent.GreenletExit)
                else RpcError.ErrorCode.APPLICATION_ERROR
            )
            raise RpcError(code, RpcError.ErrorMessage[code]) from None

    return invoke


def _call(method: str, handler: RpcHandler, data: Any) -> str | None:
    result = handler(data)
    if result is not None and not isinstance(result, str):
        raise TypeError(
            f"RPC handler for {method!r} returned {type(result).__name__}; it must return a str"
        )
    return result
