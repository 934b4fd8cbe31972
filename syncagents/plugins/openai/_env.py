"""Where the OpenAI plugins find their server and key."""

from __future__ import annotations

import os

from ._http import DEFAULT_BASE_URL

__all__ = ["resolve_endpoint"]


def resolve_endpoint(base_url: str | None, api_key: str | None) -> tuple[str, str | None]:
    """``base_url`` defaults to ``$OPENAI_BASE_URL`` or OpenAI's; ``api_key`` to
    ``$OPENAI_API_KEY``. A key is required for OpenAI itself; local OpenAI-compatible servers
    (llama.cpp, vLLM, Ollama) usually need none."""
    url = base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL
    key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
    if not key and url.rstrip("/") == DEFAULT_BASE_URL:
        raise ValueError(
            "no OpenAI API key: pass api_key= or set OPENAI_API_KEY "
            "(or point base_url / OPENAI_BASE_URL at a server that needs none)"
        )
    return url, key or None
