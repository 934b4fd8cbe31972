"""The worker's HTTP health endpoint (gevent.pywsgi; a few requests a minute from a probe).

``GET /`` answers 200 ``OK`` while the worker is registered with the server, 503 otherwise;
``GET /worker`` answers JSON with ``id``, ``agent_name``, ``active_jobs`` and ``load``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

from gevent.pywsgi import WSGIHandler, WSGIServer
from loguru import logger

__all__ = ["HealthServer"]

InfoFn = Callable[[], dict[str, Any]]
IDLE_TIMEOUT = 10.0  # seconds a probe's connection may sit idle before it is closed


class _Handler(WSGIHandler):  # type: ignore[misc]
    """pywsgi keeps a keep-alive connection open for as long as the peer does; a probe that
    never closes its connections would pile them up. Idle ones are closed after a while."""

    def handle(self) -> None:
        self.socket.settimeout(IDLE_TIMEOUT)
        super().handle()


class _ErrorLog:
    """pywsgi writes handler errors to a file-like object: route them to loguru."""

    def write(self, text: str) -> None:
        text = text.strip()
        if text:
            logger.warning("health server: {}", text)

    def flush(self) -> None:
        pass


class HealthServer:
    """``info()`` returns the worker's state: ``registered`` (bool), ``id``, ``agent_name``,
    ``active_jobs`` (int), ``load`` (float) and anything else worth showing."""

    def __init__(self, info: InfoFn, host: str = "127.0.0.1", port: int = 8081) -> None:
        self._info = info
        self.host = host
        self._requested_port = port
        self._server: WSGIServer | None = None

    @property
    def port(self) -> int:
        """The port served (the bound one with ``port=0``); the requested one before start."""
        if self._server is None:
            return self._requested_port
        return int(self._server.server_port)

    @property
    def url(self) -> str:
        """The server's base URL, ``http://host:port``."""
        return f"http://{self.host}:{self.port}"

    def start(self) -> HealthServer:
        """Bind and serve in the background; raises ``OSError`` when the port is taken."""
        server = WSGIServer(
            (self.host, self._requested_port), self._app, log=None, error_log=_ErrorLog(),
            handler_class=_Handler,
        )
        server.start()
        self._server = server
        logger.debug("health server listening on {}", self.url)
        return self

    def stop(self) -> None:
        """Stop serving and close the listening socket; does nothing when not started."""
        if self._server is not None:
            self._server.stop(timeout=1)
            self._server = None

    def _app(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "/")
        if environ.get("REQUEST_METHOD", "GET") not in ("GET", "HEAD"):
            return _reply(start_response, "405 Method Not Allowed", b"method not allowed\n")
        try:
            info = self._info()
        except Exception:
            logger.opt(exception=True).error("health info failed")
            return _reply(start_response, "500 Internal Server Error", b"error\n")
        if path == "/":
            if info.get("registered"):
                return _reply(start_response, "200 OK", b"OK")
            return _reply(start_response, "503 Service Unavailable", b"not registered")
        if path == "/worker":
            doc = dict(info)
            doc.update(
                id=info.get("id", ""),
                agent_name=info.get("agent_name", ""),
                active_jobs=int(info.get("active_jobs", 0)),
                load=float(info.get("load", 0.0)),
            )
            body = json.dumps(doc).encode()
            return _reply(start_response, "200 OK", body, "application/json")
        return _reply(start_response, "404 Not Found", b"not found\n")


def _reply(
    start_response: Callable[..., Any], status: str, body: bytes, ctype: str = "text/plain"
) -> list[bytes]:
    start_response(status, [("Content-Type", ctype), ("Content-Length", str(len(body)))])
    return [body]
