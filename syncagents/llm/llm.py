"""The LLM base class and its blocking stream.

A plugin implements one generator, ``_chat(chat_ctx, fnc_ctx, temperature)``, yielding
``ChatChunk``s; complete tool calls go in ``ChoiceDelta.tool_calls`` as
``FunctionCallInfo.create(tool_call_id=, name=, raw_arguments=)``. ``LLM.chat()`` runs that
generator in a greenlet owned by the returned ``LLMStream`` (spawned from the caller, so it
works for the caller's job), which starts the request at once and buffers chunks until the
caller iterates. The stream resolves tool calls against the function context, measures
time to first token, duration and tokens, and can run the calls.

If ``_chat`` raises, iterating the stream raises that same exception in the caller, after
the chunks that came before it; the stream is then finished.

``chat(tool_choice=, parallel_tool_calls=)`` reach plugins whose ``_chat`` declares keyword
parameters of those names (or ``**kwargs``); ``_chat(chat_ctx, fnc_ctx, temperature)``
plugins written before them keep working and simply do not get them. Both are also on the
stream (``LLMStream.tool_choice``), for inspection.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal, Union

import gevent
import gevent.queue
from gevent import Greenlet
from greenlet import getcurrent

from ..events import EventEmitter
from .chat_context import ChatContext, ChatRole
from .function_context import (
    CalledFunction,
    FunctionCallInfo,
    FunctionContext,
    execute_function_calls,
)

__all__ = [
    "LLM",
    "ChatChunk",
    "Choice",
    "ChoiceDelta",
    "CompletionUsage",
    "LLMMetrics",
    "LLMStream",
    "ToolChoice",
    "normalize_tool_choice",
]

ToolChoice = Union[Literal["auto", "required", "none"], dict[str, Any], str]
"""``"auto"``, ``"required"``, ``"none"``, a function name, or the OpenAI form
``{"type": "function", "function": {"name": ...}}``."""

_TOOL_CHOICE_LITERALS = ("auto", "required", "none")
_EXTRA_CHAT_OPTIONS = ("tool_choice", "parallel_tool_calls")


def normalize_tool_choice(
    tool_choice: ToolChoice | None, fnc_ctx: FunctionContext | None
) -> str | dict[str, Any] | None:
    """Check ``tool_choice`` and return it in OpenAI's form (``"auto"``, ``"required"``,
    ``"none"`` or ``{"type": "function", "function": {"name": ...}}``); ValueError if it is
    malformed or names a function the context does not have.

    Args:
        tool_choice: see ``ToolChoice``; ``{"name": ...}`` is accepted too.
        fnc_ctx: the tools of the request, to check a named function against.
    """
    if tool_choice is None or tool_choice in _TOOL_CHOICE_LITERALS:
        return tool_choice
    name: Any = None
    if isinstance(tool_choice, str):
        name = tool_choice
    elif isinstance(tool_choice, dict):
        fn = tool_choice.get("function")
        name = fn.get("name") if isinstance(fn, dict) else tool_choice.get("name")
        if tool_choice.get("type", "function") != "function":
            name = None
    if not isinstance(name, str) or not name:
        raise ValueError(
            'tool_choice must be "auto", "required", "none", a function name or '
            f'{{"type": "function", "function": {{"name": ...}}}}, got {tool_choice!r}'
        )
    if fnc_ctx is None or name not in fnc_ctx.ai_functions:
        known = ", ".join(fnc_ctx.ai_functions) if fnc_ctx is not None else "no tools given"
        raise ValueError(f"tool_choice names {name!r}, which is not among the tools ({known})")
    return {"type": "function", "function": {"name": name}}


def _accepted_options(method: Any) -> frozenset[str]:
    """Which of the newer ``_chat`` keyword options a plugin's ``_chat`` declares."""
    try:
        params = inspect.signature(method).parameters.values()
    except (TypeError, ValueError):
        return frozenset()
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return frozenset(_EXTRA_CHAT_OPTIONS)
    names = {p.name for p in params if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)}
    return frozenset(n for n in _EXTRA_CHAT_OPTIONS if n in names)

# a killed plugin generator gets this long to unwind (close its HTTP response, ...)
_CLOSE_GRACE = 5.0


@dataclass
class ChoiceDelta:
    """What one chunk adds to a choice: text ``content`` and/or ``tool_calls`` (as in
    OpenAI's streamed ``delta``)."""

    role: ChatRole = "assistant"
    content: str | None = None
    tool_calls: list[FunctionCallInfo] | None = None


@dataclass
class Choice:
    """One alternative of a streamed answer (``index``) and what this chunk adds to it."""

    delta: ChoiceDelta
    index: int = 0


@dataclass
class CompletionUsage:
    """Token counts of a request, as the LLM reported them (0 when it did not)."""

    completion_tokens: int = 0
    prompt_tokens: int = 0
    total_tokens: int = 0


@dataclass
class ChatChunk:
    """One streamed piece of the answer; a plugin may send ``usage`` (typically last)."""

    choices: list[Choice] = field(default_factory=list)
    request_id: str = ""
    usage: CompletionUsage | None = None


@dataclass
class LLMMetrics:
    """Figures of one ``chat()`` call; times in seconds (``ttft`` is -1 without any chunk)."""

    label: str
    request_id: str
    timestamp: float
    ttft: float
    duration: float
    cancelled: bool
    completion_tokens: int
    prompt_tokens: int
    total_tokens: int
    tokens_per_second: float
    error: str | None = None


class LLM(EventEmitter):
    """Base class of LLM plugins: subclass it and implement ``_chat``.

    ``on("metrics_collected", fn)``: ``fn`` gets ``LLMMetrics`` when a stream ends, in the
    stream's greenlet (keep it quick).
    """

    def __init__(self) -> None:
        pass

    @property
    def label(self) -> str:
        """The plugin's name in metrics and logs: ``module.ClassName``."""
        return f"{type(self).__module__}.{type(self).__name__}"

    def chat(
        self,
        chat_ctx: ChatContext,
        fnc_ctx: FunctionContext | None = None,
        temperature: float | None = None,
        *,
        tool_choice: ToolChoice | None = None,
        parallel_tool_calls: bool | None = None,
        timeout: float | None = None,
    ) -> LLMStream:
        """Start a completion; the request begins at once.

        Args:
            chat_ctx: the conversation (the stream keeps a snapshot).
            fnc_ctx: the tools the model may call.
            temperature: sampling temperature (None: the plugin's default).
            tool_choice: whether and which tool the model must call (see ``ToolChoice``);
                None leaves it to the plugin. A named function must be in ``fnc_ctx``.
            parallel_tool_calls: allow several tool calls in one answer (None: the
                plugin's default).
            timeout: bounds every wait for the next chunk (TimeoutError, and the stream
                closes).
        """
        if parallel_tool_calls is not None and not isinstance(parallel_tool_calls, bool):
            raise TypeError(f"parallel_tool_calls must be a bool, got {parallel_tool_calls!r}")
        return LLMStream(
            self,
            chat_ctx=chat_ctx,
            fnc_ctx=fnc_ctx,
            temperature=temperature,
            timeout=timeout,
            tool_choice=normalize_tool_choice(tool_choice, fnc_ctx),
            parallel_tool_calls=parallel_tool_calls,
        )

    def _chat(
        self,
        chat_ctx: ChatContext,
        fnc_ctx: FunctionContext | None,
        temperature: float | None,
    ) -> Iterator[ChatChunk]:
        """The plugin's generator (see the module docstring). It may also declare the keyword
        parameters ``tool_choice`` and ``parallel_tool_calls`` to receive them."""
        raise NotImplementedError(f"{type(self).__name__} must implement _chat()")

    def _chat_options(
        self, tool_choice: str | dict[str, Any] | None, parallel_tool_calls: bool | None
    ) -> dict[str, Any]:
        """The keyword options this plugin's ``_chat`` takes, set ones only."""
        accepted = _accepted_options(self._chat)
        options: dict[str, Any] = {}
        if tool_choice is not None and "tool_choice" in accepted:
            options["tool_choice"] = tool_choice
        if parallel_tool_calls is not None and "parallel_tool_calls" in accepted:
            options["parallel_tool_calls"] = parallel_tool_calls
        return options


class _End:
    pass


@dataclass
class _Failure:
    exc: BaseException


class LLMStream:
    """Blocking iterator of ``ChatChunk``; also a context manager (closing on exit).

    ``function_calls`` collects the tool calls iterated so far; ``execute_functions()`` runs
    them. ``close()`` (also from another greenlet) stops the request and ends iteration.
    """

    def __init__(
        self,
        llm: LLM,
        *,
        chat_ctx: ChatContext,
        fnc_ctx: FunctionContext | None,
        temperature: float | None,
        timeout: float | None = None,
        tool_choice: str | dict[str, Any] | None = None,
        parallel_tool_calls: bool | None = None,
    ) -> None:
        self._llm = llm
        self.tool_choice = tool_choice
        self.parallel_tool_calls = parallel_tool_calls
        # a snapshot: the caller may keep editing its context while the request runs
        self._chat_ctx = chat_ctx.copy()
        self._fnc_ctx = fnc_ctx
        self._temperature = temperature
        self._timeout = timeout
        self._function_calls: list[FunctionCallInfo] = []
        self._queue: gevent.queue.Queue[Any] = gevent.queue.Queue()
        self._finished = False
        self._closed = False
        self._metrics: LLMMetrics | None = None
        self._producer: Greenlet[Any, Any] = gevent.spawn(self._produce)

    @property
    def chat_ctx(self) -> ChatContext:
        """The context the request was made with (a snapshot taken by ``chat()``)."""
        return self._chat_ctx

    @property
    def fnc_ctx(self) -> FunctionContext | None:
        """The ``FunctionContext`` the request offered the model, if any."""
        return self._fnc_ctx

    @property
    def function_calls(self) -> list[FunctionCallInfo]:
        """The tool calls in the chunks iterated so far, in order, resolved against ``fnc_ctx``.

        The list is complete once iteration ended; ``execute_functions()`` runs them.
        """
        return self._function_calls

    @property
    def metrics(self) -> LLMMetrics | None:
        """Set once the plugin's generator ended (finished, failed or closed); stays None if
        the stream was closed before the request even started."""
        return self._metrics

    def _produce(self) -> None:
        start = time.perf_counter()
        timestamp = time.time()
        ttft = -1.0
        request_id = ""
        usage: CompletionUsage | None = None
        cancelled = False
        error: BaseException | None = None
        try:
            options = self._llm._chat_options(self.tool_choice, self.parallel_tool_calls)
            chunks = self._llm._chat(self._chat_ctx, self._fnc_ctx, self._temperature, **options)
            for chunk in chunks:
                if not isinstance(chunk, ChatChunk):
                    raise TypeError(f"_chat() must yield ChatChunk, got {type(chunk).__name__}")
                if ttft < 0:
                    ttft = time.perf_counter() - start
                request_id = chunk.request_id or request_id
                usage = chunk.usage or usage
                self._queue.put(chunk)
        except gevent.GreenletExit:
            cancelled = True
            raise
        except Exception as e:
            error = e
            self._queue.put(_Failure(e))
        finally:
            self._queue.put(_End())
            duration = time.perf_counter() - start
            usage = usage or CompletionUsage()
            self._metrics = LLMMetrics(
                label=self._llm.label,
                request_id=request_id,
                timestamp=timestamp,
                ttft=ttft,
                duration=duration,
                cancelled=cancelled,
                completion_tokens=usage.completion_tokens,
                prompt_tokens=usage.prompt_tokens,
                total_tokens=usage.total_tokens,
                tokens_per_second=usage.completion_tokens / duration if duration > 0 else 0.0,
                error=f"{type(error).__name__}: {error}" if error is not None else None,
            )
            self._llm.emit("metrics_collected", self._metrics)

    def __iter__(self) -> LLMStream:
        return self

    def __next__(self) -> ChatChunk:
        if self._finished or self._closed:
            raise StopIteration
        try:
            item = self._queue.get(timeout=self._timeout)
        except gevent.queue.Empty:
            self.close()
            raise TimeoutError(f"no chunk from the LLM within {self._timeout} s") from None
        if isinstance(item, _End) or self._closed:
            self._finished = True
            raise StopIteration
        if isinstance(item, _Failure):
            self._finished = True
            raise item.exc
        for choice in item.choices:
            for call in choice.delta.tool_calls or ():
                call.resolve(self._fnc_ctx)
                self._function_calls.append(call)
        return item  # type: ignore[no-any-return]

    def execute_functions(self, timeout: float | None = None) -> list[CalledFunction]:
        """Run the collected tool calls concurrently (see ``execute_function_calls``): bad
        arguments, exceptions and timeouts become results for the model, never raise."""
        return execute_function_calls(self._function_calls, timeout=timeout)

    def close(self) -> None:
        """Stop the request (the plugin's generator is killed and unwinds) and end iteration,
        also for a greenlet blocked in ``next()``. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._producer is not getcurrent():
            self._producer.kill(block=True, timeout=_CLOSE_GRACE)
        self._queue.put(_End())  # wakes a waiting consumer even if the producer never ran

    def __enter__(self) -> LLMStream:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
