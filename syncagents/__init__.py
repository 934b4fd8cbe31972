"""syncagents: real-time voice AI agents on LiveKit, in plain blocking Python on gevent.

``import syncagents`` applies gevent's monkey patches (see ``_patch``); heavy submodules
(the livekit FFI, plugins) load lazily so a worker registers within a second of launch.
"""

from __future__ import annotations

from ._patch import ensure_patched

ensure_patched()

import importlib  # noqa: E402
from typing import TYPE_CHECKING, Any  # noqa: E402

from .runtime import to_thread  # noqa: E402
from .version import __version__  # noqa: E402

if TYPE_CHECKING:
    from .job import AutoDisconnect, AutoSubscribe, JobContext, JobRequest
    from .plugin import Plugin
    from .voice import Agent, AgentSession, RunContext, StopResponse, ToolError, function_tool
    from .voice_assistant import VoiceAssistant
    from .worker import JobType, Worker, WorkerOptions, WorkerPermissions

# public name -> submodule that defines it (imported on first use)
_LAZY = {
    "WorkerOptions": "worker",
    "Worker": "worker",
    "WorkerPermissions": "worker",
    "JobType": "worker",
    "JobRequest": "job",
    "JobContext": "job",
    "AutoSubscribe": "job",
    "AutoDisconnect": "job",
    "Plugin": "plugin",
    "VoiceAssistant": "voice_assistant",
    "Agent": "voice",
    "AgentSession": "voice",
    "RunContext": "voice",
    "StopResponse": "voice",
    "ToolError": "voice",
    "function_tool": "voice",
}
_SUBMODULES = {
    "rtc", "vad", "stt", "tts", "llm", "tokenize", "codecs", "utils", "cli", "testing",
    "plugins", "runtime", "log", "voice",
}

__all__ = [
    "Agent",
    "AgentSession",
    "AutoDisconnect",
    "AutoSubscribe",
    "JobContext",
    "JobRequest",
    "JobType",
    "Plugin",
    "RunContext",
    "StopResponse",
    "ToolError",
    "VoiceAssistant",
    "Worker",
    "WorkerOptions",
    "WorkerPermissions",
    "__version__",
    "function_tool",
    "to_thread",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module = importlib.import_module(f".{_LAZY[name]}", __name__)
        value = getattr(module, name)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'syncagents' has no attribute {name!r}")
