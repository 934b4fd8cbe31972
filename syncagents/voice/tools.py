"""Function tools in the livekit-agents 1.x style, described with ``syncagents.llm``.

A tool is a plain blocking function (usually an ``Agent`` method) marked ``@function_tool``::

    @function_tool
    def get_weather(self, context: RunContext, location: str, unit: Unit = Unit.C) -> str:
        \"\"\"Get the current weather.

        Args:
            location: The city, e.g. Paris.
            unit: The temperature unit.
        \"\"\"

The schema the model sees comes from the type hints (what ``llm.TypeInfo`` allows: str, int,
float, bool, enums, lists of those; ``Annotated[T, llm.TypeInfo(...)]`` still works) and from
the docstring: its text is the tool's description, its ``Args:`` section describes the
parameters (``docstrings`` parses it). The parameter annotated ``RunContext`` is not part of
the schema: the session passes the call's context there.

Each tool becomes an entry of an ``llm.FunctionContext`` whose callable is a small keyword-only
wrapper around it, so the existing machinery (schema, argument checks and coercion, tool-call
resolution in ``LLMStream``) applies unchanged; the session calls the tool itself, with the
``RunContext`` (``tool_binding``).

A tool may raise ``ToolError`` (its message goes to the model) or ``StopResponse`` (no reply
follows the call), and may return another ``Agent`` — or ``(agent, result)`` — to hand the
conversation over to it.
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar, Union, get_args, get_origin, overload

from .. import llm
from .docstrings import parse_docstring
from .run_context import RunContext

__all__ = [
    "StopResponse",
    "ToolBinding",
    "ToolError",
    "build_function_context",
    "find_function_tools",
    "function_tool",
    "is_function_tool",
    "tool_binding",
]

F = TypeVar("F", bound=Callable[..., Any])

_MARK_ATTR = "__syncagents_function_tool__"
_BINDING_ATTR = "__syncagents_tool_binding__"


class ToolError(llm.ToolCallError):
    """Raise it in a tool to tell the model what went wrong: the message becomes the call's
    result (``error: <message>``), phrased for the model."""


class StopResponse(Exception):
    """Raise it in ``Agent.on_user_turn_completed`` to leave a user turn unanswered, or in a
    tool to ask for no reply after the call."""


@dataclass(frozen=True)
class _ToolMark:
    name: str | None
    description: str | None


@overload
def function_tool(f: F, /) -> F: ...


@overload
def function_tool(
    f: None = None, /, *, name: str | None = None, description: str | None = None
) -> Callable[[F], F]: ...


def function_tool(
    f: Any = None, /, *, name: str | None = None, description: str | None = None
) -> Any:
    """Mark a function (or an ``Agent`` method) as a tool the model may call.

    ``name`` defaults to the function's name, ``description`` to its docstring without the
    ``Args:``/``Returns:`` sections. The function stays a plain function: calling it directly
    still works.
    """

    def mark(fn: F) -> F:
        target = inspect.unwrap(getattr(fn, "__func__", fn))
        if inspect.iscoroutinefunction(target) or inspect.isasyncgenfunction(target):
            raise TypeError(f"{getattr(target, '__name__', fn)}: tools are plain blocking "
                            "functions, not async")
        setattr(target, _MARK_ATTR, _ToolMark(name, description))
        return fn

    return mark(f) if f is not None else mark


def is_function_tool(obj: Any) -> bool:
    """Whether ``obj`` (a function or bound method) was marked with ``@function_tool``."""
    target = inspect.unwrap(getattr(obj, "__func__", obj))
    return isinstance(getattr(target, _MARK_ATTR, None), _ToolMark)


def find_function_tools(obj: Any) -> list[Callable[..., Any]]:
    """The ``@function_tool`` methods of ``obj``'s class, bound to ``obj``, in definition
    order (base classes first); an override without the mark removes the tool."""
    found: dict[str, None] = {}
    for klass in reversed(type(obj).__mro__):
        for attr, value in vars(klass).items():
            fn = value.__func__ if isinstance(value, (staticmethod, classmethod)) else value
            if callable(fn) and is_function_tool(fn):
                found[attr] = None
            else:
                found.pop(attr, None)
    return [getattr(obj, attr) for attr in found]


@dataclass(frozen=True)
class ToolBinding:
    """How to call a tool: the function and the names of its ``RunContext`` parameters."""

    fn: Callable[..., Any]
    context_params: tuple[str, ...]

    def invoke(self, context: RunContext | None, arguments: dict[str, Any]) -> Any:
        """Call the tool with the model's (checked) ``arguments`` and ``context``."""
        if self.context_params and context is None:
            name = getattr(self.fn, "__name__", repr(self.fn))
            raise RuntimeError(f"tool {name} needs a RunContext: run it in an AgentSession")
        injected = dict.fromkeys(self.context_params, context)
        return self.fn(**injected, **arguments)


def tool_binding(info: llm.FunctionInfo) -> ToolBinding | None:
    """The tool behind a ``FunctionInfo`` built by ``build_function_context`` (else None)."""
    binding = getattr(info.callable, _BINDING_ATTR, None)
    return binding if isinstance(binding, ToolBinding) else None


def _is_run_context(hint: Any) -> bool:
    while True:
        origin = get_origin(hint)
        if origin is Annotated:
            hint = get_args(hint)[0]
        elif origin is Union or origin is types.UnionType:
            members = [m for m in get_args(hint) if m is not type(None)]
            if len(members) != 1:
                return False
            hint = members[0]
        else:
            break
    target = get_origin(hint) or hint
    return isinstance(target, type) and issubclass(target, RunContext)


def _find_type_info(hint: Any) -> llm.TypeInfo | None:
    """The ``TypeInfo`` the schema builder would use for ``hint`` (first found, outside in)."""
    while True:
        origin = get_origin(hint)
        if origin is Annotated:
            base, *extras = get_args(hint)
            info = next((e for e in extras if isinstance(e, llm.TypeInfo)), None)
            if info is not None:
                return info
            hint = base
        elif origin is Union or origin is types.UnionType:
            members = [m for m in get_args(hint) if m is not type(None)]
            if len(members) != 1:
                return None
            hint = members[0]
        else:
            return None


def _with_description(hint: Any, description: str) -> Any:
    """``hint`` carrying ``description`` for the schema, unless it already has one (an explicit
    ``TypeInfo(description=)`` wins over the docstring); choices already declared are kept."""
    if not description:
        return hint
    existing = _find_type_info(hint)
    if existing is not None and existing.description:
        return hint
    info = llm.TypeInfo(description=description, choices=existing.choices if existing else ())
    if get_origin(hint) is Annotated:
        # nested Annotated flattens and the first TypeInfo wins: rebuild it with ours first
        base, *extras = get_args(hint)
        rest = [e for e in extras if not isinstance(e, llm.TypeInfo)]
        params = (base, info, *rest)
        return Annotated[params]  # type: ignore[valid-type]
    return Annotated[hint, info]


def _describe_tool(tool: Callable[..., Any]) -> tuple[Callable[..., Any], str, str]:
    """The keyword-only wrapper the schema is built from, the tool's name and description."""
    target = inspect.unwrap(getattr(tool, "__func__", tool))
    mark = getattr(target, _MARK_ATTR, None) or _ToolMark(None, None)
    name = mark.name or getattr(target, "__name__", "") or repr(tool)
    try:
        hints = typing.get_type_hints(target, include_extras=True)
    except Exception as e:  # NameError for types defined in a local scope, and the like
        raise TypeError(f"{name}: cannot resolve the parameter annotations ({e})") from e
    doc = parse_docstring(inspect.getdoc(target))
    description = mark.description if mark.description is not None else doc.description

    params: list[inspect.Parameter] = []
    annotations: dict[str, Any] = {}
    context_params: list[str] = []
    for param in inspect.signature(tool).parameters.values():
        hint = hints.get(param.name, inspect.Parameter.empty)
        if hint is not inspect.Parameter.empty and _is_run_context(hint):
            context_params.append(param.name)
            continue
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD, param.POSITIONAL_ONLY):
            raise TypeError(f"{name}: parameter {param.name} must be passable by keyword")
        if hint is not inspect.Parameter.empty:
            annotations[param.name] = _with_description(hint, doc.params.get(param.name, ""))
        # keyword-only: the model's arguments always come by name
        params.append(param.replace(kind=param.KEYWORD_ONLY,
                                    annotation=annotations.get(param.name, param.empty)))

    binding = ToolBinding(tool, tuple(context_params))

    def call(**kwargs: Any) -> Any:
        # called like this only outside a session (e.g. LLMStream.execute_functions()); the
        # session calls the tool through the binding, with its RunContext
        return binding.invoke(None, kwargs)

    call.__name__ = name
    call.__qualname__ = getattr(target, "__qualname__", name)
    call.__module__ = getattr(target, "__module__", __name__)
    call.__doc__ = description
    call.__annotations__ = annotations
    call.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    setattr(call, _BINDING_ATTR, binding)
    return call, name, description


def build_function_context(tools: Iterable[Callable[..., Any]]) -> llm.FunctionContext | None:
    """An ``llm.FunctionContext`` describing ``tools`` (None when there are none).

    ``TypeError`` for a tool whose parameters cannot be described, ``ValueError`` for two
    tools with the same name — both at once, not when the model first calls them.
    """
    tools = list(tools)
    if not tools:
        return None
    fnc_ctx = llm.FunctionContext()
    for tool in tools:
        wrapper, name, description = _describe_tool(tool)
        fnc_ctx.ai_callable(name=name, description=description)(wrapper)
    return fnc_ctx
