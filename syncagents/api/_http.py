"""The aiohttp session that livekit-api's client runs on (built on the bridge loop).

Imported only there, when the first client is made: it imports aiohttp.
"""

from __future__ import annotations

import json
from typing import Any

import aiohttp

# Twirp's HTTP status for each error code, read backwards: for error bodies that carry none
_CODE_BY_STATUS = {
    400: "invalid_argument",
    401: "unauthenticated",
    403: "permission_denied",
    404: "not_found",
    408: "deadline_exceeded",
    409: "already_exists",
    412: "failed_precondition",
    429: "resource_exhausted",
    500: "internal",
    501: "unimplemented",
    503: "unavailable",
}


class TwirpResponse(aiohttp.ClientResponse):
    """A response whose ``json()`` also reads the plain-text errors livekit-server sends.

    livekit-api reads an error as ``await resp.json()`` and, when that fails, reports code
    ``unknown`` with no message. livekit-server answers a rejected token (wrong secret, unknown
    key) with HTTP 401 and a plain-text body, so that is what a wrong secret looked like. Here
    such a body becomes the Twirp error it stands for: the code from the HTTP status, the text
    as the message (scrubbed of the token it quotes before it reaches an exception).
    """

    async def json(self, *args: Any, **kwargs: Any) -> Any:
        """The decoded JSON body; for an error status with a body that is not JSON, the Twirp
        error object it stands for."""
        if self.status < 400:
            return await super().json(*args, **kwargs)
        body = await self.read()
        try:
            return json.loads(body)
        except ValueError:
            return {
                "code": _CODE_BY_STATUS.get(self.status, "unknown"),
                "msg": body.decode("utf-8", "replace").strip(),
            }


def make_session(timeout: float | None) -> aiohttp.ClientSession:
    """A session for one client (call on the bridge loop: it binds to the running loop)."""
    return aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=timeout), response_class=TwirpResponse
    )
