"""``plugins.openai.LLM``: chat completions streamed over server-sent events, with tools."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ... import llm
from ._errors import APIConnectionError, APIStatusError
from ._http import DEFAULT_TIMEOUT, OpenAIClient, Timeout
from ._sse import iter_sse

__all__ = ["LLM"]


@dataclass
class _PartialToolCall:
    """A tool call being streamed: its arguments arrive as JSON text in pieces."""

    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)


class LLM(llm.LLM):
    """Any OpenAI-compatible chat-completions server (OpenAI, llama.cpp, vLLM, Ollama...).

    ``timeout``: seconds, or ``(connect, read)`` where ``read`` bounds the silence between two
    streamed pieces. Connection failures, 429 and 5xx are retried ``max_retries`` times with
    exponential backoff from ``retry_backoff`` seconds, but only before the answer started
    streaming (a retry must not repeat text already given out). 401/404 and other client
    errors raise ``APIStatusError`` at once.

    ``tool_choice`` / ``parallel_tool_calls`` here are defaults; ``chat(tool_choice=,
    parallel_tool_calls=)`` override them per request. ``strict_tool_schema`` sends every tool
    in OpenAI's strict form (None: each tool's own ``strict`` setting). Images in user
    messages (``llm.ChatImage``) go as ``image_url`` parts, for vision models.
    """

    def __init__(
        self,
        model: str = "gpt-4o-mini",
        base_url: str | None = None,
        api_key: str | None = None,
        temperature: float | None = None,
        timeout: Timeout = DEFAULT_TIMEOUT,
        *,
        max_retries: int = 3,
        retry_backoff: float = 0.5,
        parallel_tool_calls: bool | None = None,
        tool_choice: str | dict[str, Any] | None = None,
        max_tokens: int | None = None,
        user: str | None = None,
        include_usage: bool = True,
        organization: str | None = None,
        strict_tool_schema: bool | None = None,
    ) -> None:
        super().__init__()
        self.model = model
        self.strict_tool_schema = strict_tool_schema
        self.temperature = temperature
        self.parallel_tool_calls = parallel_tool_calls
        self.tool_choice = tool_choice
        self.max_tokens = max_tokens
        self.user = user
        self.include_usage = include_usage
        self._client = OpenAIClient.from_env(
            base_url, api_key, timeout=timeout, max_retries=max_retries,
            retry_backoff=retry_backoff, organization=organization,
        )

    @property
    def base_url(self) -> str:
        """The server's API base URL (no trailing slash)."""
        return self._client.base_url

    def close(self) -> None:
        """Close the plugin's HTTP session and its pooled connections."""
        self._client.close()

    def _request_body(
        self,
        chat_ctx: llm.ChatContext,
        fnc_ctx: llm.FunctionContext | None,
        temperature: float | None,
        tool_choice: str | dict[str, Any] | None = None,
        parallel_tool_calls: bool | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": llm.to_openai_messages(chat_ctx),
            "stream": True,
        }
        if self.include_usage:
            body["stream_options"] = {"include_usage": True}
        temp = temperature if temperature is not None else self.temperature
        if temp is not None:
            body["temperature"] = temp
        tools = llm.build_tool_schemas(fnc_ctx, self.strict_tool_schema)
        if tools:
            body["tools"] = tools
            choice = tool_choice if tool_choice is not None else self.tool_choice
            if choice is not None:
                body["tool_choice"] = llm.normalize_tool_choice(choice, fnc_ctx)
            parallel = (
                parallel_tool_calls if parallel_tool_calls is not None
                else self.parallel_tool_calls
            )
            if parallel is not None:
                body["parallel_tool_calls"] = parallel
        if self.max_tokens is not None:
            body["max_tokens"] = self.max_tokens
        if self.user is not None:
            body["user"] = self.user
        return body

    def _chat(
        self,
        chat_ctx: llm.ChatContext,
        fnc_ctx: llm.FunctionContext | None,
        temperature: float | None,
        *,
        tool_choice: str | dict[str, Any] | None = None,
        parallel_tool_calls: bool | None = None,
    ) -> Iterator[llm.ChatChunk]:
        body = self._request_body(
            chat_ctx, fnc_ctx, temperature, tool_choice, parallel_tool_calls
        )
        resp = self._client.request(
            "POST",
            "chat/completions",
            json_body=body,
            stream=True,
            headers={"Accept": "text/event-stream"},
        )
        with resp:
            yield from self._parse_stream(self._client.iter_body(resp), resp.url)

    def _parse_stream(self, chunks: Iterator[bytes], url: str) -> Iterator[llm.ChatChunk]:
        request_id = ""
        # (choice index, tool call index) -> the call being assembled
        partial: dict[tuple[int, int], _PartialToolCall] = {}
        finished = False
        for event in iter_sse(chunks):
            if event.data.strip() == "[DONE]":
                finished = True
                break
            try:
                payload = json.loads(event.data)
            except ValueError:
                raise APIConnectionError(
                    f"undecodable event from {url}: {event.data[:200]!r}", retryable=False
                ) from None
            if not isinstance(payload, dict):
                continue
            if "error" in payload:
                raise _stream_error(payload["error"], url, self._client.redact)
            request_id = str(payload.get("id") or request_id)
            usage = payload.get("usage")
            for choice in payload.get("choices") or ():
                index = int(choice.get("index") or 0)
                delta = choice.get("delta") or {}
                content = delta.get("content")
                if content:
                    yield _text_chunk(request_id, index, content)
                for tc in delta.get("tool_calls") or ():
                    done = _add_tool_call_delta(partial, index, tc)
                    if done:
                        yield _tool_chunk(request_id, index, done)
                if choice.get("finish_reason"):
                    finished = True
                    done = _take(partial, index)
                    if done:
                        yield _tool_chunk(request_id, index, done)
            if isinstance(usage, dict):
                yield llm.ChatChunk(
                    choices=[],
                    request_id=request_id,
                    usage=llm.CompletionUsage(
                        completion_tokens=int(usage.get("completion_tokens") or 0),
                        prompt_tokens=int(usage.get("prompt_tokens") or 0),
                        total_tokens=int(usage.get("total_tokens") or 0),
                    ),
                )
        if not finished:
            # no [DONE] and no finish_reason: the answer was cut off, not complete
            raise APIConnectionError(f"the stream from {url} ended early", retryable=False)
        for index in sorted({i for i, _ in partial}):
            done = _take(partial, index)
            if done:
                yield _tool_chunk(request_id, index, done)


def _add_tool_call_delta(
    partial: dict[tuple[int, int], _PartialToolCall], choice: int, tc: dict[str, Any]
) -> list[_PartialToolCall]:
    """Merge one streamed tool-call piece; return the calls it showed to be complete.

    OpenAI streams the calls of a turn one after the other, keyed by ``index``: the first
    piece of a call carries its id and name, the following ones pieces of the arguments. A new
    index (or, for servers that omit the index, a new id) means the earlier calls are done.
    """
    fn = tc.get("function") or {}
    call_id = tc.get("id") or ""
    raw_index = tc.get("index")
    if raw_index is None:  # some servers send each call whole, without an index
        known = [i for c, i in partial if c == choice]
        current = max(known) if known else 0
        same = partial.get((choice, current))
        raw_index = current + 1 if same is not None and call_id and call_id != same.id else current
    key = (choice, int(raw_index))
    completed: list[_PartialToolCall] = []
    call = partial.get(key)
    if call is None:
        for other in sorted(k for k in partial if k[0] == choice and k != key):
            completed.append(partial.pop(other))
        call = partial[key] = _PartialToolCall()
    if call_id:
        call.id = call_id
    if fn.get("name"):
        call.name = fn["name"]
    args = fn.get("arguments")
    if args:
        call.arguments.append(args if isinstance(args, str) else json.dumps(args))
    return completed


def _take(partial: dict[tuple[int, int], _PartialToolCall], choice: int) -> list[_PartialToolCall]:
    keys = sorted(k for k in partial if k[0] == choice)
    return [partial.pop(k) for k in keys]


def _text_chunk(request_id: str, index: int, content: str) -> llm.ChatChunk:
    return llm.ChatChunk(
        choices=[llm.Choice(delta=llm.ChoiceDelta(role="assistant", content=content), index=index)],
        request_id=request_id,
    )


def _tool_chunk(request_id: str, index: int, calls: list[_PartialToolCall]) -> llm.ChatChunk:
    infos = [
        llm.FunctionCallInfo.create(
            tool_call_id=call.id or f"call_{uuid.uuid4().hex[:24]}",
            name=call.name,
            raw_arguments="".join(call.arguments) or "{}",
        )
        for call in calls
    ]
    delta = llm.ChoiceDelta(role="assistant", tool_calls=infos)
    return llm.ChatChunk(choices=[llm.Choice(delta=delta, index=index)], request_id=request_id)


def _stream_error(error: Any, url: str, redact: Callable[[str], str]) -> APIStatusError:
    if isinstance(error, dict):
        message = str(error.get("message") or error)
        code = error.get("code")
        status = code if isinstance(code, int) else None
    else:
        message, status = str(error), None
    return APIStatusError(
        redact(f"error inside the stream from {url}: {message}"), status=status, body=None
    )
