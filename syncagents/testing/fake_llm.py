"""A scripted LLM for tests, written as an ordinary plugin (``llm.LLM`` + a ``_chat`` generator).

Each call to ``chat()`` consumes the next scripted response, or asks ``responder`` once the
script is used up::

    fake = FakeLLM(responses=[
        [FakeToolCall("get_weather", {"city": "Paris"})],   # first turn: a tool call
        "It is sunny in Paris.",                             # second turn: text
    ], ttft=0.2, per_chunk_delay=0.05)

A response is a text, a list of tool calls (``FakeToolCall``, ``{"name", "arguments"}`` dicts
or ``(name, arguments)`` tuples), a ``FakeResponse`` (text and tool calls, optionally
followed by an error), or an exception instance to raise. Text streams in word chunks.
``calls`` holds a copy of every context the model saw.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Union

import gevent
import gevent.event

from .. import llm

__all__ = ["FakeLLM", "FakeLLMRequest", "FakeResponse", "FakeToolCall"]


@dataclass
class FakeToolCall:
    """A scripted tool call; a ``str`` for ``arguments`` is sent verbatim (e.g. broken JSON)."""

    name: str
    arguments: dict[str, Any] | str = field(default_factory=dict)
    id: str | None = None


ToolCallSpec = Union[FakeToolCall, dict[str, Any], tuple[str, Any]]


@dataclass
class FakeResponse:
    """Text, then tool calls, then (if set) ``error`` raised by the stream."""

    text: str = ""
    tool_calls: Sequence[ToolCallSpec] = ()
    error: BaseException | None = None


Response = Union[str, Sequence[ToolCallSpec], FakeResponse, BaseException]


@dataclass
class FakeLLMRequest:
    """One request a ``FakeLLM`` received: the context, tools and temperature it was
    asked with."""

    chat_ctx: llm.ChatContext
    fnc_ctx: llm.FunctionContext | None
    temperature: float | None


_WORD = re.compile(r"\s*\S+\s*|\s+")


def _to_response(value: Response) -> FakeResponse:
    if isinstance(value, FakeResponse):
        return value
    if isinstance(value, BaseException):
        return FakeResponse(error=value)
    if isinstance(value, str):
        return FakeResponse(text=value)
    return FakeResponse(tool_calls=list(value))


def _to_tool_call(spec: ToolCallSpec) -> FakeToolCall:
    if isinstance(spec, FakeToolCall):
        return spec
    if isinstance(spec, dict):
        return FakeToolCall(spec["name"], spec.get("arguments", {}), spec.get("id"))
    name, arguments = spec
    return FakeToolCall(name, arguments)


def _count_words(text: str | None) -> int:
    return len(text.split()) if text else 0


class FakeLLM(llm.LLM):
    """Scripted replies with simulated latency: ``ttft`` before the first chunk and
    ``per_chunk_delay`` between chunks (seconds, waited with ``gevent.sleep``)."""

    def __init__(
        self,
        responses: Sequence[Response] = (),
        *,
        responder: Callable[[llm.ChatContext], Response] | None = None,
        ttft: float = 0.0,
        per_chunk_delay: float = 0.0,
    ) -> None:
        super().__init__()
        self._responses = list(responses)
        self._responder = responder
        self.ttft = ttft
        self.per_chunk_delay = per_chunk_delay
        self.calls: list[llm.ChatContext] = []
        self.requests: list[FakeLLMRequest] = []
        self._request_ids = itertools.count(1)
        self._new_call = gevent.event.Event()

    @property
    def call_count(self) -> int:
        """How many requests the model received so far (``len(calls)``)."""
        return len(self.calls)

    def wait_for_calls(self, count: int, timeout: float | None = None) -> None:
        """Block until the model was asked ``count`` times in total (TimeoutError)."""
        with gevent.Timeout(timeout, TimeoutError(f"FakeLLM was not called {count} times")):
            while len(self.calls) < count:
                self._new_call.wait()

    def _next_response(self, chat_ctx: llm.ChatContext) -> FakeResponse:
        if self._responses:
            return _to_response(self._responses.pop(0))
        if self._responder is not None:
            return _to_response(self._responder(chat_ctx))
        raise RuntimeError(f"FakeLLM has no scripted response left for call {len(self.calls)}")

    def _record(
        self,
        chat_ctx: llm.ChatContext,
        fnc_ctx: llm.FunctionContext | None,
        temperature: float | None,
    ) -> None:
        self.calls.append(chat_ctx.copy())
        self.requests.append(FakeLLMRequest(self.calls[-1], fnc_ctx, temperature))
        # wake current waiters with a fresh event for the next ones
        woken, self._new_call = self._new_call, gevent.event.Event()
        woken.set()

    def _chat(
        self,
        chat_ctx: llm.ChatContext,
        fnc_ctx: llm.FunctionContext | None,
        temperature: float | None,
    ) -> Iterator[llm.ChatChunk]:
        self._record(chat_ctx, fnc_ctx, temperature)
        request_id = f"fake-{next(self._request_ids)}"
        response = self._next_response(chat_ctx)
        if self.ttft > 0:
            gevent.sleep(self.ttft)

        sent = 0
        for piece in _WORD.findall(response.text):
            if sent and self.per_chunk_delay > 0:
                gevent.sleep(self.per_chunk_delay)
            delta = llm.ChoiceDelta(role="assistant", content=piece)
            yield llm.ChatChunk(choices=[llm.Choice(delta=delta)], request_id=request_id)
            sent += 1

        calls = [_to_tool_call(spec) for spec in response.tool_calls]
        if calls:
            if sent and self.per_chunk_delay > 0:
                gevent.sleep(self.per_chunk_delay)
            infos = [
                llm.FunctionCallInfo.create(
                    tool_call_id=call.id or f"call_{request_id}_{i}",
                    name=call.name,
                    raw_arguments=(
                        call.arguments
                        if isinstance(call.arguments, str)
                        else json.dumps(call.arguments)
                    ),
                )
                for i, call in enumerate(calls)
            ]
            delta = llm.ChoiceDelta(role="assistant", tool_calls=infos)
            yield llm.ChatChunk(choices=[llm.Choice(delta=delta)], request_id=request_id)
            sent += len(infos)

        if response.error is not None:
            raise response.error
        prompt_tokens = sum(_count_words(m.text) for m in chat_ctx.messages)
        usage = llm.CompletionUsage(
            completion_tokens=sent, prompt_tokens=prompt_tokens, total_tokens=prompt_tokens + sent
        )
        yield llm.ChatChunk(choices=[], request_id=request_id, usage=usage)
