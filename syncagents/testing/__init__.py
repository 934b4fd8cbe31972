"""``syncagents.testing``: test your agent, with or without a LiveKit server.

- ``DispatchServer``: a test double of LiveKit's agent dispatch endpoint (the worker protocol),
  with fault injection.
- ``FakeVAD``, ``FakeSTT``, ``FakeLLM``, ``FakeTTS``: scripted plugins with latencies, built
  like real plugins (so they double as examples).
- ``LocalRoom``: the in-process room ``syncagents console`` runs agents in.
- ``converse(entrypoint, inputs=[...])``: run an agent on audio files and chat messages and
  get the ``Conversation`` back (turns with user text, agent text and latency).
- ``LiveKitServer``: a real ``livekit-server`` on loopback, for tests of a whole agent over
  real WebRTC (found on the machine or built once from its Go module).

Names load lazily so importing this package stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "Conversation": "conversation",
    "converse": "conversation",
    "DispatchServer": "dispatch_server",
    "FakeVAD": "fakes",
    "FakeSTT": "fakes",
    "FakeTTS": "fakes",
    "FakeLLM": "fake_llm",
    "FakeToolCall": "fake_llm",
    "FakeResponse": "fake_llm",
    "LocalRoom": "local_room",
    "LiveKitServer": "livekit_server",
    "LiveKitServerError": "livekit_server",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'syncagents.testing' has no attribute {name!r}")
