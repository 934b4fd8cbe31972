"""``syncagents.api``: LiveKit's server API in blocking style.

    from syncagents import api

    with api.LiveKitAPI() as lkapi:  # $LIVEKIT_URL, $LIVEKIT_API_KEY, $LIVEKIT_API_SECRET
        rooms = lkapi.room.list_rooms(api.ListRoomsRequest())
        lkapi.agent_dispatch.create_dispatch(
            api.CreateAgentDispatchRequest(agent_name="support", room="call-1", metadata="{}")
        )

The same services, methods and protobuf types as livekit-api (``livekit.api``); every call
blocks only the calling greenlet. Everything else ``livekit.api`` exports (the protobuf
request and response types, ``AccessToken``, ``VideoGrants``, ``TokenVerifier``,
``WebhookReceiver``, ``TwirpError``, ...) is re-exported unchanged, looked up on first use so
that importing this package stays cheap. Its asyncio ``LiveKitAPI`` is replaced by the
blocking one, and its async service modules are not re-exported.
"""

from __future__ import annotations

from types import ModuleType
from typing import TYPE_CHECKING, Any

from . import _livekit
from .client import LiveKitAPI, http_url
from .errors import APIConnectionError, APITimeoutError
from .services import BlockingService

if TYPE_CHECKING:  # the lazily re-exported names, for type checkers
    from livekit.api import (
        AccessToken,
        AgentEndpointGrants,
        AgentGrants,
        AgentThreadGrants,
        InferenceGrants,
        ObservabilityGrants,
        ServerError,
        ServerErrorCode,
        SipCallError,
        SIPGrants,
        TokenVerifier,
        TwirpError,
        TwirpErrorCode,
        VideoGrants,
        WebhookReceiver,
    )
    from livekit.protocol.agent import *  # noqa: F403
    from livekit.protocol.agent_dispatch import *  # noqa: F403
    from livekit.protocol.connector_twilio import *  # noqa: F403
    from livekit.protocol.connector_whatsapp import *  # noqa: F403
    from livekit.protocol.egress import *  # noqa: F403
    from livekit.protocol.ingress import *  # noqa: F403
    from livekit.protocol.models import *  # noqa: F403
    from livekit.protocol.room import *  # noqa: F403
    from livekit.protocol.sip import *  # noqa: F403
    from livekit.protocol.webhook import *  # noqa: F403

__all__ = [
    "APIConnectionError",
    "APITimeoutError",
    "AccessToken",
    "AgentEndpointGrants",
    "AgentGrants",
    "AgentThreadGrants",
    "BlockingService",
    "InferenceGrants",
    "LiveKitAPI",
    "ObservabilityGrants",
    "SIPGrants",
    "ServerError",
    "ServerErrorCode",
    "SipCallError",
    "TokenVerifier",
    "TwirpError",
    "TwirpErrorCode",
    "VideoGrants",
    "WebhookReceiver",
    "http_url",
]


def __getattr__(name: str) -> Any:
    """A name of ``livekit.api`` (imported now, on first use), re-exported unchanged."""
    if not name.startswith("_"):
        value = getattr(_livekit.module(), name, None)
        # livekit's async service modules stay out: their methods are coroutines
        if value is not None and not isinstance(value, ModuleType):
            globals()[name] = value  # looked up once
            return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    """This package's names and every re-exported name of ``livekit.api``."""
    lk = _livekit.module()
    lk_names = {
        n
        for n in dir(lk)
        if not n.startswith("_") and not isinstance(getattr(lk, n), ModuleType)
    }
    return sorted(set(globals()) | lk_names)
