"""``LiveKitAPI``: LiveKit's server API (rooms, participants, agent dispatch, SIP, egress,
ingress) in blocking style.

livekit-api's client is asyncio + aiohttp. Here it lives on the bridge loop: it is built there
on the first call (an ``aiohttp.ClientSession`` binds to the loop it is created on), every call
is a coroutine run there through :func:`syncagents._bridge.run`, and only the calling greenlet
waits. The livekit objects are kept in :data:`_clients`, touched only on the loop thread and
never referenced by the facade, so no coroutine method is reachable from a facade object.
"""

from __future__ import annotations

import os
import weakref
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from .. import _bridge
from . import _livekit
from .errors import APIConnectionError, APITimeoutError, redact
from .services import BlockingService, service_class

__all__ = ["DEFAULT_TIMEOUT", "LiveKitAPI", "http_url"]

DEFAULT_TIMEOUT = 10.0
CLOSE_TIMEOUT = 5.0

_SCHEMES = {"ws": "http", "wss": "https", "http": "http", "https": "https"}


def http_url(url: str) -> str:
    """The HTTP(S) base URL of a LiveKit server given by its ws/wss/http/https URL.

    ``ws`` becomes ``http`` and ``wss`` ``https``; a path (a server behind a reverse proxy)
    stays, without its trailing slash; query and fragment go. Anything else is a ValueError.
    """
    parts = urlsplit(url.strip())
    scheme = _SCHEMES.get(parts.scheme.lower())
    if scheme is None or not parts.netloc:
        raise ValueError(
            f"LiveKit server URL {url!r} is not a ws://, wss://, http:// or https:// URL"
        )
    return urlunsplit((scheme, parts.netloc, parts.path.rstrip("/"), "", ""))


class _Connection:
    """What the loop side needs to know about one facade: server, credentials, timeout, and
    whether it was closed. The key of its livekit client in :data:`_clients`."""

    __slots__ = ("api_key", "api_secret", "closed", "timeout", "url")

    def __init__(self, url: str, api_key: str, api_secret: str, timeout: float | None) -> None:
        self.url = url
        self.api_key = api_key
        self.api_secret = api_secret
        self.timeout = timeout
        self.closed = False


# connection -> (livekit.api.LiveKitAPI, its aiohttp session). Loop thread only: created, used
# and closed there, so no lock is needed and two greenlets' first calls cannot build two.
_clients: dict[_Connection, tuple[Any, Any]] = {}
_exit_hook_pending = False


class LiveKitAPI:
    """LiveKit's server API, blocking: ``.room``, ``.agent_dispatch``, ``.sip``, ``.egress``,
    ``.ingress`` (and ``.connector``) with livekit-api's methods and protobuf types.

    ``url`` (ws/wss/http/https), ``api_key`` and ``api_secret`` default to ``$LIVEKIT_URL``,
    ``$LIVEKIT_API_KEY`` and ``$LIVEKIT_API_SECRET``. ``timeout`` (seconds, ``None`` for none)
    is how long a call may wait for the server unless the call gives its own ``timeout=``
    (SIP and WhatsApp calls that wait to be answered get at least livekit's ring window).
    Nothing touches the network, or starts the bridge loop, before the first call.

    A server's refusal raises ``api.TwirpError`` with its code and message; an unreachable
    server :class:`~syncagents.api.APIConnectionError`; no answer in time ``TimeoutError``. The
    secret, and the tokens signed with it, never appear in any of them. ``close()`` (or a
    ``with`` block) releases the HTTP session; clients still open when the process exits are
    closed with the bridge loop.
    """

    def __init__(
        self,
        url: str | None = None,
        api_key: str | None = None,
        api_secret: str | None = None,
        timeout: float | None = DEFAULT_TIMEOUT,
    ) -> None:
        raw_url = url or os.environ.get("LIVEKIT_URL", "")
        if not raw_url:
            raise ValueError("LiveKit server URL missing: pass url= or set LIVEKIT_URL")
        key = api_key or os.environ.get("LIVEKIT_API_KEY", "")
        secret = api_secret or os.environ.get("LIVEKIT_API_SECRET", "")
        missing = [
            what
            for what, value in (
                ("api_key= or set LIVEKIT_API_KEY", key),
                ("api_secret= or set LIVEKIT_API_SECRET", secret),
            )
            if not value
        ]
        if missing:
            raise ValueError("LiveKit API credentials missing: pass " + " and ".join(missing))
        if timeout is not None and (
            isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0
        ):
            raise ValueError(
                f"timeout must be a positive number of seconds or None, not {timeout!r}"
            )
        self._conn = _Connection(http_url(raw_url), key, secret, timeout)
        self._services: dict[str, BlockingService] = {}
        # a client dropped without close() still gets its HTTP session closed
        self._finalizer = weakref.finalize(self, _close_later, self._conn)
        self._finalizer.atexit = False  # at exit the bridge's exit hook closes what is left

    # -- services ---------------------------------------------------------------------------
    @property
    def room(self) -> BlockingService:
        """Rooms and participants (``livekit.api.RoomService``)."""
        return self._service("room")

    @property
    def agent_dispatch(self) -> BlockingService:
        """Explicit agent dispatch (``livekit.api.AgentDispatchService``)."""
        return self._service("agent_dispatch")

    @property
    def sip(self) -> BlockingService:
        """SIP trunks, dispatch rules and calls (``livekit.api.SipService``)."""
        return self._service("sip")

    @property
    def egress(self) -> BlockingService:
        """Recording and streaming out (``livekit.api.EgressService``)."""
        return self._service("egress")

    @property
    def ingress(self) -> BlockingService:
        """Streams in (``livekit.api.IngressService``)."""
        return self._service("ingress")

    @property
    def connector(self) -> BlockingService:
        """WhatsApp and Twilio connectors (``livekit.api.ConnectorService``)."""
        return self._service("connector")

    def _service(self, name: str) -> BlockingService:
        svc = self._services.get(name)
        if svc is None:
            svc = self._services[name] = service_class(name)(name, self)
        return svc

    # -- state ------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        """The server's HTTP(S) base URL."""
        return self._conn.url

    @property
    def api_key(self) -> str:
        """The API key calls are signed for (the secret is not exposed)."""
        return self._conn.api_key

    @property
    def timeout(self) -> float | None:
        """Seconds a call may wait for the server when it gives no ``timeout=``."""
        return self._conn.timeout

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._conn.closed

    def close(self, timeout: float | None = CLOSE_TIMEOUT) -> None:
        """Close the HTTP session; later calls raise ``RuntimeError``. Idempotent."""
        conn = self._conn
        if conn.closed:
            return
        conn.closed = True
        self._finalizer.detach()
        if _bridge.running():  # no loop, no client: nothing to close
            _bridge.run(_close(conn), timeout=timeout)

    def __enter__(self) -> LiveKitAPI:
        """``with LiveKitAPI() as lkapi:`` closes the client at the end of the block."""
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Close the client (see :meth:`close`)."""
        self.close()

    def __repr__(self) -> str:
        state = ", closed" if self._conn.closed else ""
        return f"LiveKitAPI(url={self._conn.url!r}{state})"

    # -- calls ------------------------------------------------------------------------------
    def _call(
        self,
        service: str,
        method: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        deadline: float | None,
    ) -> Any:
        """Run ``lk_client.<service>.<method>(*args, **kwargs)`` on the bridge loop."""
        conn = self._conn
        if conn.closed:
            raise RuntimeError(f"{self!r} is closed")
        _livekit.module()  # imported off the hub, before the loop thread needs it
        try:
            return _bridge.run(_invoke(conn, service, method, args, kwargs), timeout=deadline)
        except APITimeoutError:
            raise
        except TimeoutError:  # the bridge's deadline: the call's own timeout ran out
            raise APITimeoutError(
                f"{service}.{method}: no answer from {conn.url} within {deadline} s"
            ) from None


# -- loop thread ------------------------------------------------------------------------------


def _client_for(conn: _Connection) -> Any:
    global _exit_hook_pending
    entry = _clients.get(conn)
    if entry is None:
        from ._http import make_session

        session = make_session(conn.timeout)  # ours: it reads livekit-server's text errors
        client = _livekit.module().LiveKitAPI(
            conn.url, conn.api_key, conn.api_secret, session=session
        )
        entry = _clients[conn] = (client, session)
        if not _exit_hook_pending:  # once per loop: the loop forgets its hooks when it stops
            _exit_hook_pending = True
            _bridge.add_exit_hook(_close_all)
    return entry[0]


async def _invoke(
    conn: _Connection, service: str, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    import aiohttp

    lk = _livekit.module()
    if conn.closed:
        raise RuntimeError(f"LiveKitAPI(url={conn.url!r}) is closed")
    fn = getattr(getattr(_client_for(conn), service), method)
    # Each error is rebuilt and raised after the ``except`` block: the new exception then
    # carries neither the original's context nor its traceback, whose frames hold the signed
    # token (request headers) and the secret.
    error: BaseException
    try:
        return await fn(*args, **kwargs)
    except lk.ServerError as exc:
        error = _clean_server_error(exc, conn.api_secret)
    except _bridge.TIMEOUT_ERRORS:
        error = APITimeoutError(f"{service}.{method}: no answer from {conn.url} in time")
    except aiohttp.ClientError as exc:
        reason = redact(str(exc), conn.api_secret) or type(exc).__name__
        error = APIConnectionError(
            f"{service}.{method}: cannot reach the LiveKit server at {conn.url}: {reason}"
        )
    except RuntimeError:
        if not conn.closed:
            raise
        # close() from another greenlet closed the session under this call
        error = RuntimeError(f"LiveKitAPI(url={conn.url!r}) was closed during {service}.{method}")
    raise error


def _clean_server_error(exc: Any, secret: str) -> BaseException:
    """The same ``ServerError`` (or ``SipCallError``) with code, status and scrubbed text."""
    message = redact(str(exc.message), secret)
    metadata = {str(k): redact(str(v), secret) for k, v in (exc.metadata or {}).items()}
    try:
        return type(exc)(exc.code, message, status=exc.status, metadata=metadata)
    except TypeError:  # a subclass with another constructor: the base class says the same
        server_error = _livekit.module().ServerError
        return server_error(exc.code, message, status=exc.status, metadata=metadata)


async def _close(conn: _Connection) -> None:
    entry = _clients.pop(conn, None)
    if entry is not None:
        await entry[1].close()  # livekit leaves a session it was given to its owner


async def _close_all() -> None:
    global _exit_hook_pending
    _exit_hook_pending = False
    entries = list(_clients.values())
    _clients.clear()
    for _client, session in entries:
        try:
            await session.close()
        except Exception:  # exiting: one failed close must not keep the others open
            pass


def _close_later(conn: _Connection) -> None:
    # weakref.finalize: runs on whichever thread collected the facade, so it only schedules
    conn.closed = True
    if _bridge.running():
        try:
            _bridge.submit(_close(conn))
        except RuntimeError:  # the loop stopped meanwhile; its exit hook closed the client
            pass
