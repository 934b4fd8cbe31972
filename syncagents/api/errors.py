"""Errors of the blocking server API, and the scrubbing that keeps credentials out of them.

A server's answer is re-raised as livekit-api's own ``TwirpError`` (``ServerError``) with the
server's code and message. Transport failures become :class:`APIConnectionError` and late
answers :class:`APITimeoutError`, both builtin exception types, so callers need neither
aiohttp nor asyncio to handle them.
"""

from __future__ import annotations

import re

__all__ = ["APIConnectionError", "APITimeoutError", "redact"]

# A JSON Web Token: three base64url parts, the first one a JSON object ("{" encodes to "eyJ").
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")


class APIConnectionError(ConnectionError):
    """The LiveKit server could not be reached, or the connection broke during a call."""


class APITimeoutError(TimeoutError):
    """The LiveKit server did not answer a call in time."""


def redact(text: str, secret: str = "") -> str:
    """``text`` without ``secret`` and without anything shaped like a JWT.

    Applied to everything a server or a transport error says before it reaches an exception:
    a server may quote the token it rejected, and the token is signed with the secret.
    """
    if secret:
        text = text.replace(secret, "<secret>")
    return _JWT.sub("<token>", text)
