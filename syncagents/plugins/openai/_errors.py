"""Errors of the OpenAI plugins. Messages never contain the API key (it is redacted even when
a server echoes it back)."""

from __future__ import annotations

__all__ = ["APIConnectionError", "APIError", "APIStatusError", "APITimeoutError"]


class APIError(Exception):
    """A request to the OpenAI-compatible server failed.

    ``status`` is the HTTP status (None for connection failures), ``message`` the server's
    explanation (or ours), ``retryable`` whether another attempt could have succeeded.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        body: object = None,
        retryable: bool = False,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.body = body
        self.retryable = retryable


class APIStatusError(APIError):
    """The server answered with an error status (or sent an error inside the stream)."""


class APIConnectionError(APIError):
    """The server could not be reached, or the connection broke mid-response."""

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        super().__init__(message, status=None, retryable=retryable)


class APITimeoutError(APIConnectionError, TimeoutError):
    """Connecting or waiting for data took longer than the configured timeout."""
