"""The ``livekit.api`` module, imported on first need, off the hub.

Importing it pulls in aiohttp (which loads the system's CA certificates) and every protobuf
service module: 0.2-0.3 s. So ``import syncagents.api`` does not, and the first call, or the
first re-exported name looked up, imports it on a native thread: greenlets of other jobs keep
running meanwhile instead of stalling behind a hub-block warning.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from .. import _bridge

_module: ModuleType | None = None


def module() -> ModuleType:
    """``livekit.api`` (imported on the first call)."""
    global _module
    if _module is None:
        if _bridge.in_loop_thread():  # not a greenlet: nothing to keep running here
            found = importlib.import_module("livekit.api")
        else:
            # Python's import lock makes greenlets arriving meanwhile wait for this import
            found = _bridge.to_thread(importlib.import_module, "livekit.api")
        _module = found
    return _module
