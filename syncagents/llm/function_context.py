"""AI functions (tools): declaring them, describing them to a model, and running its calls.

Functions are plain blocking callables. ``execute_function_calls`` runs a batch of calls
concurrently, each in its own greenlet spawned from the caller, so they inherit its job id and
never outlive the call: on timeout the stragglers are killed and report a ``TimeoutError``.
CPU-bound functions should hand their work to ``syncagents.to_thread`` to stay concurrent.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar, overload

import gevent
from loguru import logger

from .arguments import (
    FunctionArgInfo,
    ToolCallError,
    arg_json_schema,
    build_arg_info,
    coerce_arguments,
)

__all__ = [
    "CalledFunction",
    "FunctionCallInfo",
    "FunctionContext",
    "FunctionInfo",
    "ai_callable",
    "build_tool_schemas",
    "execute_function_calls",
]

F = TypeVar("F", bound=Callable[..., Any])

_META_ATTR = "__syncagents_ai_callable__"

# how long killed functions get to unwind (run their finally blocks) after a timeout
_KILL_GRACE = 5.0


@dataclass(frozen=True)
class _AICallableMeta:
    name: str | None
    description: str | None


@overload
def ai_callable(fn: F, /) -> F: ...


@overload
def ai_callable(
    fn: None = None, /, *, name: str | None = None, description: str | None = None
) -> Callable[[F], F]: ...


def ai_callable(
    fn: Any = None, /, *, name: str | None = None, description: str | None = None
) -> Any:
    """Mark a ``FunctionContext`` method as callable by the model.

    ``name`` defaults to the method's name, ``description`` to its docstring.
    """

    def mark(f: F) -> F:
        setattr(f, _META_ATTR, _AICallableMeta(name, description))
        return f

    return mark(fn) if fn is not None else mark


@dataclass(frozen=True, eq=False)
class FunctionInfo:
    """A function the model may call; ``arguments`` keep the declaration order."""

    name: str
    description: str
    arguments: dict[str, FunctionArgInfo]
    callable: Callable[..., Any] = field(repr=False)

    def json_schema(self) -> dict[str, Any]:
        """The OpenAI tool form ``{"type": "function", "function": {...}}``."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": {
                    "type": "object",
                    "properties": {n: arg_json_schema(a) for n, a in self.arguments.items()},
                    "required": [n for n, a in self.arguments.items() if a.required],
                },
            },
        }


def build_function_info(
    fn: Callable[..., Any], name: str | None = None, description: str | None = None
) -> FunctionInfo:
    """Describe ``fn`` (a bound method or plain function); TypeError if it cannot be a tool."""
    target = inspect.unwrap(getattr(fn, "__func__", fn))
    fn_name = name or getattr(target, "__name__", "") or repr(fn)
    if inspect.iscoroutinefunction(target) or inspect.isasyncgenfunction(target):
        raise TypeError(f"{fn_name}: AI functions must be plain blocking functions, not async")
    try:
        hints = typing.get_type_hints(target, include_extras=True)
    except Exception as e:  # NameError for types defined in a local scope, and the like
        raise TypeError(f"{fn_name}: cannot resolve the parameter annotations ({e})") from e
    arguments: dict[str, FunctionArgInfo] = {}
    for param in inspect.signature(fn).parameters.values():
        if param.kind not in (param.POSITIONAL_OR_KEYWORD, param.KEYWORD_ONLY):
            raise TypeError(f"{fn_name}: parameter {param.name} must be passable by keyword")
        if param.name not in hints:
            raise TypeError(f"{fn_name}: parameter {param.name} needs a type annotation")
        arguments[param.name] = build_arg_info(fn_name, param, hints[param.name])
    if description is None:
        description = inspect.getdoc(target) or ""
    return FunctionInfo(name=fn_name, description=description, arguments=arguments, callable=fn)


class FunctionContext:
    """A set of AI functions. Subclass it and mark methods with ``@llm.ai_callable(...)``, or
    register plain functions with ``@fnc_ctx.ai_callable(...)`` on an instance."""

    def __init__(self) -> None:
        self._fncs: dict[str, FunctionInfo] = {}
        for attr, meta in _marked_attributes(type(self)):
            self._register(getattr(self, attr), meta.name, meta.description)

    @property
    def ai_functions(self) -> dict[str, FunctionInfo]:
        if "_fncs" not in self.__dict__:  # a subclass __init__ that forgot super().__init__()
            FunctionContext.__init__(self)
        return self._fncs

    def ai_callable(
        self, *, name: str | None = None, description: str | None = None
    ) -> Callable[[F], F]:
        """Register a plain function on this instance: ``@fnc_ctx.ai_callable(description=)``."""

        def register(fn: F) -> F:
            self._register(fn, name, description)
            return fn

        return register

    def _register(self, fn: Callable[..., Any], name: str | None, description: str | None) -> None:
        info = build_function_info(fn, name, description)
        fncs = self.ai_functions
        if info.name in fncs:
            raise ValueError(f"duplicate AI function name {info.name!r}")
        fncs[info.name] = info


def _marked_attributes(cls: type) -> list[tuple[str, _AICallableMeta]]:
    """Marked methods in definition order; an override without the mark unregisters one."""
    found: dict[str, _AICallableMeta] = {}
    for klass in reversed(cls.__mro__):
        for attr, value in vars(klass).items():
            meta = getattr(value, _META_ATTR, None)
            if meta is None and isinstance(value, (staticmethod, classmethod)):
                meta = getattr(value.__func__, _META_ATTR, None)
            if isinstance(meta, _AICallableMeta):
                found[attr] = meta
            else:
                found.pop(attr, None)
    return list(found.items())


def build_tool_schemas(fnc_ctx: FunctionContext | None) -> list[dict[str, Any]]:
    """The ``tools`` list of an OpenAI chat request (empty without a context)."""
    if fnc_ctx is None:
        return []
    return [info.json_schema() for info in fnc_ctx.ai_functions.values()]


@dataclass
class FunctionCallInfo:
    """A tool call from the model.

    Plugins create it with ``FunctionCallInfo.create(tool_call_id=, name=, raw_arguments=)``
    once the call is complete; ``LLMStream`` resolves it against its ``FunctionContext``:
    ``function_info`` is then set and ``arguments`` holds the checked, coerced keyword
    arguments, or ``error`` says why the call cannot run (unknown function, bad arguments).
    """

    tool_call_id: str
    function_info: FunctionInfo | None = field(repr=False)
    raw_arguments: str
    arguments: dict[str, Any] = field(default_factory=dict)
    name: str = ""
    error: ToolCallError | None = None

    def __post_init__(self) -> None:
        if not self.name and self.function_info is not None:
            self.name = self.function_info.name

    @classmethod
    def create(
        cls,
        *,
        tool_call_id: str,
        name: str,
        raw_arguments: str,
        fnc_ctx: FunctionContext | None = None,
    ) -> FunctionCallInfo:
        call = cls(tool_call_id=tool_call_id, function_info=None, raw_arguments=raw_arguments,
                   name=name)
        if fnc_ctx is not None:
            call.resolve(fnc_ctx)
        return call

    def resolve(self, fnc_ctx: FunctionContext | None) -> None:
        """Look the function up and check the arguments (idempotent; never raises)."""
        info = fnc_ctx.ai_functions.get(self.name) if fnc_ctx is not None else None
        self.function_info = info
        self.arguments = {}
        self.error = None
        if info is None:
            known = ", ".join(fnc_ctx.ai_functions) if fnc_ctx is not None else ""
            self.error = ToolCallError(
                f"unknown function {self.name!r}" + (f" (available: {known})" if known else "")
            )
            return
        try:
            self.arguments = coerce_arguments(info.name, info.arguments, self.raw_arguments)
        except ToolCallError as e:
            self.error = e

    def execute(self) -> CalledFunction:
        """Run the function in the calling greenlet; errors become the result, never raised."""
        if self.error is not None:
            logger.warning("tool call {} not run: {}", self.name, self.error)
            return CalledFunction(call_info=self, exception=self.error)
        if self.function_info is None:
            err = ToolCallError(f"function {self.name!r} was not resolved")
            return CalledFunction(call_info=self, exception=err)
        try:
            result = self.function_info.callable(**self.arguments)
        except Exception as e:
            logger.opt(exception=e).warning("AI function {} raised", self.name)
            return CalledFunction(call_info=self, exception=e)
        return CalledFunction(call_info=self, result=result)


@dataclass
class CalledFunction:
    """The outcome of a tool call: ``result`` or ``exception`` (argument errors, what the
    function raised, or ``TimeoutError``). ``ChatMessage.create_tool_from_called_function``
    turns it into the tool message for the model."""

    call_info: FunctionCallInfo
    result: Any = None
    exception: BaseException | None = None


def execute_function_calls(
    calls: Sequence[FunctionCallInfo], timeout: float | None = None
) -> list[CalledFunction]:
    """Run ``calls`` concurrently, one greenlet each; results in the calls' order.

    Blocks until all finished or ``timeout`` (seconds) ran out; unfinished calls are killed and
    get a ``TimeoutError`` result. If the caller itself is killed, the calls die with it.
    """
    calls = list(calls)
    if not calls:
        return []
    greenlets = [gevent.spawn(call.execute) for call in calls]
    try:
        gevent.joinall(greenlets, timeout=timeout)
    finally:
        unfinished = [g for g in greenlets if not g.dead]
        if unfinished:
            gevent.killall(unfinished, block=True, timeout=_KILL_GRACE)
            for g in unfinished:
                if not g.dead:
                    logger.error("an AI function ignored being killed and is still running")
    results: list[CalledFunction] = []
    for call, g in zip(calls, greenlets):
        value = g.value if g.dead else None
        if isinstance(value, CalledFunction):
            results.append(value)
        elif g.exception is not None and not isinstance(g.exception, gevent.GreenletExit):
            results.append(CalledFunction(call_info=call, exception=g.exception))
        else:
            logger.warning("AI function {} did not finish within {} s", call.name, timeout)
            err = TimeoutError(f"function {call.name} did not finish within {timeout} s")
            results.append(CalledFunction(call_info=call, exception=err))
    return results
