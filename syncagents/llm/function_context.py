"""AI functions (tools): declaring them, describing them to a model, and running its calls.

Functions are plain blocking callables. ``execute_function_calls`` runs a batch of calls
concurrently, each in its own greenlet spawned from the caller, so they inherit its job id and
never outlive the call: on timeout the stragglers are killed and report a ``TimeoutError``.
CPU-bound functions should hand their work to ``syncagents.to_thread`` to stay concurrent.
"""

from __future__ import annotations

import copy
import inspect
import json
import re
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
    read_arguments,
)
from .docstring import parse_docstring
from .json_repair import parse_tool_arguments
from .schema import check_json_schema_arguments, to_strict_json_schema

__all__ = [
    "CalledFunction",
    "FunctionCallInfo",
    "FunctionContext",
    "FunctionInfo",
    "ai_callable",
    "build_raw_function_info",
    "build_tool_schemas",
    "execute_function_calls",
]

F = TypeVar("F", bound=Callable[..., Any])

_META_ATTR = "__syncagents_ai_callable__"

# what OpenAI (and most servers copying it) accept as a tool name
_TOOL_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


def _check_tool_name(name: str) -> None:
    if not _TOOL_NAME.fullmatch(name):
        raise TypeError(
            f"invalid tool name {name!r}: use 1 to 64 letters, digits, '_' or '-' (name=...)"
        )


# how long killed functions get to unwind (run their finally blocks) after a timeout
_KILL_GRACE = 5.0


@dataclass(frozen=True)
class _AICallableMeta:
    name: str | None
    description: str | None
    raw_schema: dict[str, Any] | None = None
    strict: bool = False


@overload
def ai_callable(fn: F, /) -> F: ...


@overload
def ai_callable(
    fn: None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    raw_schema: dict[str, Any] | None = None,
    strict: bool = False,
) -> Callable[[F], F]: ...


def ai_callable(
    fn: Any = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    raw_schema: dict[str, Any] | None = None,
    strict: bool = False,
) -> Any:
    """Mark a ``FunctionContext`` method as callable by the model.

    Args:
        name: the tool's name; defaults to the method's name (or ``raw_schema["name"]``).
        description: defaults to the docstring's text before its sections; parameters
            without a ``TypeInfo``/``Field`` description take theirs from the docstring's
            ``Args:`` section.
        raw_schema: a JSON-schema tool instead of one built from the signature: the OpenAI
            function form ``{"name", "description", "parameters"}`` (or the whole tool
            ``{"type": "function", "function": {...}}``). The method then takes one
            argument, the model's arguments as a dict (checked lightly against the schema).
        strict: describe the tool in OpenAI's strict form (see ``to_strict_json_schema``).
    """
    if raw_schema is not None and not isinstance(raw_schema, dict):
        raise TypeError(f"raw_schema must be a dict, got {type(raw_schema).__name__}")

    def mark(f: F) -> F:
        setattr(f, _META_ATTR, _AICallableMeta(name, description, raw_schema, strict))
        return f

    return mark(fn) if fn is not None else mark


@dataclass(frozen=True, eq=False)
class FunctionInfo:
    """A function the model may call; ``arguments`` keep the declaration order.

    A raw-schema tool has ``raw_schema`` (its ``parameters`` JSON schema) and no
    ``arguments``: its callable gets the model's arguments as one dict. ``strict`` makes
    ``json_schema()`` produce OpenAI's strict form by default.
    """

    name: str
    description: str
    arguments: dict[str, FunctionArgInfo]
    callable: Callable[..., Any] = field(repr=False)
    raw_schema: dict[str, Any] | None = field(default=None, repr=False)
    strict: bool = False

    @property
    def is_raw(self) -> bool:
        """Whether the tool was given as a JSON schema (its callable takes one dict)."""
        return self.raw_schema is not None

    def parameters_schema(self) -> dict[str, Any]:
        """The JSON schema of the arguments object (a copy; ``$defs`` of pydantic-described
        parameters hoisted to its top so their ``$ref`` resolve)."""
        if self.raw_schema is not None:
            return copy.deepcopy(self.raw_schema)
        properties: dict[str, Any] = {}
        defs: dict[str, Any] = {}
        for n, a in self.arguments.items():
            prop = arg_json_schema(a)
            for def_name, def_schema in (prop.pop("$defs", None) or {}).items():
                if defs.setdefault(def_name, def_schema) != def_schema:
                    raise TypeError(
                        f"{self.name}: two parameter types are both named {def_name!r}"
                    )
            properties[n] = prop
        params: dict[str, Any] = {
            "type": "object",
            "properties": properties,
            "required": [n for n, a in self.arguments.items() if a.required],
        }
        if defs:
            params["$defs"] = defs
        return params

    def json_schema(self, strict: bool | None = None) -> dict[str, Any]:
        """The OpenAI tool form ``{"type": "function", "function": {...}}``.

        Args:
            strict: OpenAI's strict form (``"strict": true``, every property required, the
                optional ones nullable, no additional properties); ``None`` uses the
                tool's own ``strict`` setting.
        """
        strict = self.strict if strict is None else strict
        params = self.parameters_schema()
        function: dict[str, Any] = {"name": self.name, "description": self.description}
        if strict:
            function["strict"] = True
            params = to_strict_json_schema(params)
        function["parameters"] = params
        return {"type": "function", "function": function}


def build_function_info(
    fn: Callable[..., Any],
    name: str | None = None,
    description: str | None = None,
    *,
    strict: bool = False,
) -> FunctionInfo:
    """Describe ``fn`` (a bound method or plain function); TypeError if it cannot be a tool.

    Args:
        fn: the function; each parameter needs a type annotation.
        name: the tool's name (default: the function's).
        description: the tool's description (default: the docstring without its sections).
        strict: see ``ai_callable``.
    """
    target = inspect.unwrap(getattr(fn, "__func__", fn))
    fn_name = name or getattr(target, "__name__", "") or repr(fn)
    _check_tool_name(fn_name)
    if inspect.iscoroutinefunction(target) or inspect.isasyncgenfunction(target):
        raise TypeError(f"{fn_name}: AI functions must be plain blocking functions, not async")
    try:
        hints = typing.get_type_hints(target, include_extras=True)
    except Exception as e:  # NameError for types defined in a local scope, and the like
        raise TypeError(f"{fn_name}: cannot resolve the parameter annotations ({e})") from e
    doc = parse_docstring(inspect.getdoc(target))
    arguments: dict[str, FunctionArgInfo] = {}
    for param in inspect.signature(fn).parameters.values():
        if param.kind not in (param.POSITIONAL_OR_KEYWORD, param.KEYWORD_ONLY):
            raise TypeError(f"{fn_name}: parameter {param.name} must be passable by keyword")
        if param.name not in hints:
            raise TypeError(f"{fn_name}: parameter {param.name} needs a type annotation")
        arguments[param.name] = build_arg_info(
            fn_name, param, hints[param.name], doc.params.get(param.name, "")
        )
    if description is None:
        description = doc.description
    info = FunctionInfo(
        name=fn_name, description=description, arguments=arguments, callable=fn, strict=strict
    )
    info.parameters_schema()  # clashing pydantic model names fail now, not at the first request
    return info


def build_raw_function_info(
    fn: Callable[..., Any],
    raw_schema: dict[str, Any],
    name: str | None = None,
    description: str | None = None,
    *,
    strict: bool = False,
) -> FunctionInfo:
    """Describe a tool given as a JSON schema; ``fn`` is called with the arguments dict.

    Args:
        fn: a blocking callable taking one positional argument (the dict).
        raw_schema: ``{"name", "description", "parameters"}`` or the whole OpenAI tool
            ``{"type": "function", "function": {...}}``; ``parameters`` must be an object
            schema.
        name: overrides the schema's name (default: the schema's, else ``fn``'s name).
        description: overrides the schema's description.
        strict: see ``ai_callable``.
    """
    spec = raw_schema.get("function") if raw_schema.get("type") == "function" else raw_schema
    if not isinstance(spec, dict):
        raise TypeError("raw_schema: expected {'name', 'description', 'parameters'}")
    target = inspect.unwrap(getattr(fn, "__func__", fn))
    fn_name = name or spec.get("name") or getattr(target, "__name__", "")
    if not fn_name or not isinstance(fn_name, str):
        raise TypeError("raw_schema: the tool needs a name")
    _check_tool_name(fn_name)
    params = spec.get("parameters", {"type": "object", "properties": {}})
    if not isinstance(params, dict) or params.get("type", "object") != "object":
        raise TypeError(f"{fn_name}: raw_schema parameters must be a JSON schema of an object")
    if inspect.iscoroutinefunction(target) or inspect.isasyncgenfunction(target):
        raise TypeError(f"{fn_name}: AI functions must be plain blocking functions, not async")
    try:
        inspect.signature(fn).bind({})
    except TypeError:
        raise TypeError(
            f"{fn_name}: a raw-schema function takes one argument, the arguments dict"
        ) from None
    except ValueError:  # no signature (some builtins): trust the caller
        pass
    if description is None:
        description = str(spec.get("description") or parse_docstring(inspect.getdoc(target))
                          .description)
    return FunctionInfo(
        name=fn_name,
        description=description,
        arguments={},
        callable=fn,
        raw_schema={"type": "object", **params},
        strict=strict,
    )


class FunctionContext:
    """A set of AI functions. Subclass it and mark methods with ``@llm.ai_callable(...)``, or
    register plain functions with ``@fnc_ctx.ai_callable(...)`` on an instance."""

    def __init__(self) -> None:
        self._fncs: dict[str, FunctionInfo] = {}
        for attr, meta in _marked_attributes(type(self)):
            self._register(
                getattr(self, attr), meta.name, meta.description, meta.raw_schema, meta.strict
            )

    @property
    def ai_functions(self) -> dict[str, FunctionInfo]:
        """The registered AI functions: name → ``FunctionInfo``."""
        if "_fncs" not in self.__dict__:  # a subclass __init__ that forgot super().__init__()
            FunctionContext.__init__(self)
        return self._fncs

    def ai_callable(
        self,
        *,
        name: str | None = None,
        description: str | None = None,
        raw_schema: dict[str, Any] | None = None,
        strict: bool = False,
    ) -> Callable[[F], F]:
        """Register a plain function on this instance: ``@fnc_ctx.ai_callable(description=)``
        (same arguments as ``llm.ai_callable``)."""

        def register(fn: F) -> F:
            self._register(fn, name, description, raw_schema, strict)
            return fn

        return register

    def add_function(self, info: FunctionInfo) -> None:
        """Register a tool described elsewhere (``build_function_info``,
        ``build_raw_function_info``); ValueError if its name is taken."""
        fncs = self.ai_functions
        if info.name in fncs:
            raise ValueError(f"duplicate AI function name {info.name!r}")
        fncs[info.name] = info

    def _register(
        self,
        fn: Callable[..., Any],
        name: str | None,
        description: str | None,
        raw_schema: dict[str, Any] | None = None,
        strict: bool = False,
    ) -> None:
        if raw_schema is not None:
            info = build_raw_function_info(fn, raw_schema, name, description, strict=strict)
        else:
            info = build_function_info(fn, name, description, strict=strict)
        self.add_function(info)


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


def build_tool_schemas(
    fnc_ctx: FunctionContext | None, strict: bool | None = None
) -> list[dict[str, Any]]:
    """The ``tools`` list of an OpenAI chat request (empty without a context).

    Args:
        fnc_ctx: the tools.
        strict: force OpenAI's strict form on (True) or off (False) for every tool;
            ``None`` lets each tool decide (its ``strict`` setting).
    """
    if fnc_ctx is None:
        return []
    return [info.json_schema(strict) for info in fnc_ctx.ai_functions.values()]


@dataclass
class FunctionCallInfo:
    """A tool call from the model.

    Plugins create it with ``FunctionCallInfo.create(tool_call_id=, name=, raw_arguments=)``
    once the call is complete; ``LLMStream`` resolves it against its ``FunctionContext``:
    ``function_info`` is then set and ``arguments`` holds the checked, coerced keyword
    arguments (for a raw-schema tool, the arguments dict), or ``error`` says why the call
    cannot run (unknown function, bad arguments).

    Resolving also makes ``raw_arguments`` valid JSON, because it goes back to the model in the
    next request and strict servers reject a chat holding broken JSON: malformed arguments
    that could be repaired are replaced by the repaired JSON, hopeless ones by ``"{}"`` (with
    ``error`` set, so the tool result tells the model its arguments were invalid). The text
    as sent is then kept in ``original_arguments``.
    """

    tool_call_id: str
    function_info: FunctionInfo | None = field(repr=False)
    raw_arguments: str
    arguments: dict[str, Any] = field(default_factory=dict)
    name: str = ""
    error: ToolCallError | None = None
    original_arguments: str | None = field(default=None, repr=False)
    _json_error: str | None = field(default=None, repr=False, compare=False)
    _sanitized: bool = field(default=False, repr=False, compare=False)

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
        """A tool call from its parts, resolved against ``fnc_ctx`` when one is given.

        Plugins call it once a call's arguments are complete; ``LLMStream`` resolves the calls it
        yields against its own ``FunctionContext`` anyway.
        """
        call = cls(tool_call_id=tool_call_id, function_info=None, raw_arguments=raw_arguments,
                   name=name)
        if fnc_ctx is not None:
            call.resolve(fnc_ctx)
        return call

    def sanitize_arguments(self) -> None:
        """Make ``raw_arguments`` valid JSON (see the class docstring); idempotent."""
        if self._sanitized:
            return
        self._sanitized = True
        raw = self.raw_arguments
        if isinstance(raw, dict):  # a plugin handed the decoded object
            self.raw_arguments = json.dumps(raw, ensure_ascii=False)
            return
        try:
            data, repaired = parse_tool_arguments(raw)
        except ValueError as e:
            self.original_arguments = raw
            self.raw_arguments = "{}"
            self._json_error = raw
            logger.warning("tool call {}: unreadable arguments {!r} ({})", self.name,
                           (raw or "")[:200], e)
            return
        if repaired:
            self.original_arguments = raw
            self.raw_arguments = json.dumps(data, ensure_ascii=False)
            logger.info("tool call {}: repaired malformed arguments {!r} -> {}", self.name,
                        (raw or "")[:200], self.raw_arguments[:200])

    def resolve(self, fnc_ctx: FunctionContext | None) -> None:
        """Look the function up and check the arguments (idempotent; never raises)."""
        self.sanitize_arguments()
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
            if self._json_error is not None:
                read_arguments(info.name, self._json_error)  # raises, phrased for the model
            if info.raw_schema is not None:
                data = read_arguments(info.name, self.raw_arguments)
                check_json_schema_arguments(info.name, info.raw_schema, data)
                self.arguments = data
            else:
                self.arguments = coerce_arguments(info.name, info.arguments, self.raw_arguments)
        except ToolCallError as e:
            self.arguments = {}
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
            if self.function_info.raw_schema is not None:
                result = self.function_info.callable(dict(self.arguments))
            else:
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
