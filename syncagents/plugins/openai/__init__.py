"""OpenAI and OpenAI-compatible servers (llama.cpp, vLLM, Ollama, ...): chat completions with
tool calls, transcription and speech, over plain HTTP (``requests``, cooperative under gevent).

``base_url`` defaults to ``$OPENAI_BASE_URL`` (else OpenAI's), ``api_key`` to
``$OPENAI_API_KEY``. Failures raise :class:`APIError` subclasses carrying ``status`` and
``message``; the key is never logged nor put in an error.
"""

from __future__ import annotations

from ...plugin import Plugin
from ...version import __version__
from ._errors import APIConnectionError, APIError, APIStatusError, APITimeoutError
from .llm import LLM
from .stt import STT
from .tts import TTS

__all__ = [
    "LLM",
    "STT",
    "TTS",
    "APIConnectionError",
    "APIError",
    "APIStatusError",
    "APITimeoutError",
]


class OpenAIPlugin(Plugin):
    """The registry entry of the OpenAI-compatible LLM, STT and TTS plugin."""

    def __init__(self) -> None:
        super().__init__(title="openai", version=__version__, package=__package__ or __name__)


Plugin.register_plugin(OpenAIPlugin())
