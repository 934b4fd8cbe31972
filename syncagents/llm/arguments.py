"""Parameters of AI functions: reading their annotations, describing them as JSON schema, and
turning the JSON arguments a model sends into the Python values the function expects.

Models are sloppy with JSON types ("3" for 3, 3 for 3.0, "true" for true), so coercion is
lenient where the meaning is unambiguous and strict everywhere else: a value that cannot be
read as the declared type is an error the model gets to see, never a crash.
"""

from __future__ import annotations

import enum
import inspect
import json
import math
import types
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Union, get_args, get_origin

from loguru import logger

__all__ = [
    "FunctionArgInfo",
    "ToolCallError",
    "TypeInfo",
    "arg_json_schema",
    "build_arg_info",
    "coerce_arguments",
]

_JSON_TYPES: dict[type, str] = {str: "string", int: "integer", float: "number", bool: "boolean"}


class ToolCallError(ValueError):
    """A tool call the model made cannot be run: unknown function, bad JSON or bad arguments.

    The message is written for the model (it becomes the tool result), so it says what to fix.
    """


@dataclass(frozen=True)
class TypeInfo:
    """Metadata for a parameter: ``Annotated[int, TypeInfo(description=..., choices=(1, 2))]``."""

    description: str = ""
    choices: Sequence[Any] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "choices", tuple(self.choices))


@dataclass(frozen=True)
class FunctionArgInfo:
    """One parameter of an AI function.

    ``type`` is the annotation without ``Annotated``/``Optional``: str, int, float, bool, an
    ``enum.Enum`` subclass, or ``list[...]`` of one of those. ``choices`` are the allowed values
    (of the items, for lists); for enums they are the members' values. ``default`` is
    ``inspect.Parameter.empty`` for required parameters.
    """

    name: str
    description: str
    type: Any
    default: Any = inspect.Parameter.empty
    choices: tuple[Any, ...] = ()
    nullable: bool = False

    @property
    def required(self) -> bool:
        return self.default is inspect.Parameter.empty

    @property
    def is_list(self) -> bool:
        return get_origin(self.type) is list

    @property
    def item_type(self) -> Any:
        """The scalar type: the list's item type for lists, else ``type`` itself."""
        return get_args(self.type)[0] if self.is_list else self.type


def _strip_optional(hint: Any) -> tuple[Any, bool]:
    origin = get_origin(hint)
    if origin is Union or origin is types.UnionType:
        members = get_args(hint)
        rest = [m for m in members if m is not type(None)]
        if len(rest) == 1 and len(members) == 2:
            return rest[0], True
        raise TypeError(f"unions other than Optional[X] are not supported: {hint!r}")
    return hint, False


def _unwrap(hint: Any) -> tuple[Any, TypeInfo | None, bool]:
    """Peel ``Annotated`` and ``Optional`` in any nesting (Python 3.10's get_type_hints wraps
    ``Annotated[...] = None`` parameters in ``Optional``)."""
    info: TypeInfo | None = None
    nullable = False
    while True:
        hint, opt = _strip_optional(hint)
        nullable = nullable or opt
        if get_origin(hint) is Annotated:
            base, *extras = get_args(hint)
            info = info or next((e for e in extras if isinstance(e, TypeInfo)), None)
            hint = base
            continue
        return hint, info, nullable


def _is_enum(t: Any) -> bool:
    return isinstance(t, type) and issubclass(t, enum.Enum)


def _scalar_json_type(t: Any) -> str:
    if _is_enum(t):
        values = [m.value for m in t]
        if values and all(isinstance(v, str) for v in values):
            return "string"
        if values and all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            return "integer"
        if values and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            return "number"
        raise TypeError(f"enum {t.__name__} needs str or numeric values for a tool schema")
    if t in _JSON_TYPES:
        return _JSON_TYPES[t]
    raise TypeError(f"unsupported parameter type {t!r} (use str, int, float, bool, an Enum, "
                    "or a list of those)")


def build_arg_info(fn_name: str, param: inspect.Parameter, hint: Any) -> FunctionArgInfo:
    """Describe ``param`` of ``fn_name`` from its resolved annotation; TypeError if unsupported."""
    base, info, nullable = _unwrap(hint)
    if get_origin(base) is list or base is list:
        items = get_args(base)
        if len(items) != 1:
            raise TypeError(f"{fn_name}.{param.name}: list parameters need an item type")
        item, _, _ = _unwrap(items[0])
        base = list[item]  # type: ignore[valid-type]
    else:
        item = base
    try:
        _scalar_json_type(item)
    except TypeError as e:
        raise TypeError(f"{fn_name}.{param.name}: {e}") from None

    choices: tuple[Any, ...] = tuple(info.choices) if info else ()
    where = f"{fn_name}.{param.name} choice"
    if _is_enum(item):
        members = [_coerce_scalar(c, item, where) for c in choices] if choices else list(item)
        choices = tuple(m.value for m in members)
    elif choices:
        # checked now so a typo in the declaration fails at start-up, not mid-conversation
        try:
            choices = tuple(_coerce_scalar(c, item, where) for c in choices)
        except ToolCallError as e:
            raise TypeError(str(e)) from None
    return FunctionArgInfo(
        name=param.name,
        description=info.description if info else "",
        type=base,
        default=param.default,
        choices=choices,
        nullable=nullable or param.default is None,
    )


def arg_json_schema(arg: FunctionArgInfo) -> dict[str, Any]:
    """The JSON schema of one parameter, as OpenAI-style tools expect it."""
    item: dict[str, Any] = {"type": _scalar_json_type(arg.item_type)}
    if arg.choices:
        item["enum"] = list(arg.choices)
    schema: dict[str, Any] = {"description": arg.description} if arg.description else {}
    if arg.is_list:
        schema.update(type="array", items=item)
    else:
        schema.update(item)
    return schema


def _bad(where: str, expected: str, value: Any) -> ToolCallError:
    return ToolCallError(f"{where} must be {expected}, got {json.dumps(value, default=repr)}")


def _coerce_enum(value: Any, t: type[enum.Enum], where: str) -> enum.Enum:
    members = list(t)
    if not isinstance(value, bool):  # True == 1 in Python, never in JSON
        for m in members:
            if not isinstance(m.value, bool) and m.value == value:
                return m
    if isinstance(value, str):
        text = value.strip()
        # the model may quote a numeric value, change the case, or use the member's name
        for m in members:
            if str(m.value) == text:
                return m
        for m in members:
            if isinstance(m.value, str) and m.value.lower() == text.lower():
                return m
        if text in t.__members__:
            return t[text]
    allowed = ", ".join(json.dumps(m.value) for m in members)
    raise ToolCallError(f"{where} must be one of {allowed}, got {json.dumps(value, default=repr)}")


def _coerce_scalar(value: Any, t: Any, where: str) -> Any:
    if _is_enum(t):
        return _coerce_enum(value, t, where)
    if isinstance(value, bool) and t is not bool:
        raise _bad(where, f"{'an' if t is int else 'a'} {_JSON_TYPES[t]}", value)
    if t is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)):  # e.g. a zip code sent as a number
            return str(value)
        raise _bad(where, "a string", value)
    if t is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        raise _bad(where, "a boolean", value)
    if t is int:
        if isinstance(value, int):
            return value
        number = _as_number(value)
        if number is not None and float(number).is_integer():
            return int(number)
        raise _bad(where, "an integer", value)
    if t is float:
        number = _as_number(value)
        if number is not None:
            return float(number)
        raise _bad(where, "a number", value)
    raise TypeError(f"unsupported type {t!r}")


def _as_number(value: Any) -> float | int | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number: float | int = value
    elif isinstance(value, str):
        text = value.strip()
        try:
            number = int(text)
        except ValueError:
            try:
                number = float(text)
            except ValueError:
                return None
    else:
        return None
    return number if math.isfinite(number) else None


def _check_choice(value: Any, arg: FunctionArgInfo, where: str) -> Any:
    if not arg.choices:
        return value
    plain = value.value if isinstance(value, enum.Enum) else value
    if plain not in arg.choices:
        allowed = ", ".join(json.dumps(c) for c in arg.choices)
        raise ToolCallError(f"{where} must be one of {allowed}, got {json.dumps(plain)}")
    return value


def _coerce_value(value: Any, arg: FunctionArgInfo) -> Any:
    where = f"argument {arg.name!r}"
    if not arg.is_list:
        return _check_choice(_coerce_scalar(value, arg.item_type, where), arg, where)
    if isinstance(value, str):
        # some models send the array JSON-encoded a second time
        try:
            decoded = json.loads(value)
        except ValueError:
            decoded = None
        if isinstance(decoded, list):
            value = decoded
    if not isinstance(value, (list, tuple)):
        raise _bad(where, "an array", value)
    out = []
    for i, item in enumerate(value):
        item_where = f"{where} item {i}"
        out.append(_check_choice(_coerce_scalar(item, arg.item_type, item_where), arg, item_where))
    return out


def coerce_arguments(
    fn_name: str, args: dict[str, FunctionArgInfo], raw_arguments: str | dict[str, Any] | None
) -> dict[str, Any]:
    """Parse and check a model's arguments for ``fn_name``: a dict of keyword arguments.

    Missing optional arguments (and ``null`` for them) are left out so the function's default
    applies; unknown arguments are ignored. Raises ``ToolCallError`` naming every problem.
    """
    if isinstance(raw_arguments, dict):
        data: Any = raw_arguments
    else:
        text = (raw_arguments or "").strip()
        try:
            data = json.loads(text) if text else {}
        except ValueError as e:
            raise ToolCallError(f"the arguments for {fn_name} are not valid JSON ({e})") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ToolCallError(f"the arguments for {fn_name} must be a JSON object")

    out: dict[str, Any] = {}
    problems: list[str] = []
    for name, arg in args.items():
        value = data.get(name)
        if value is None:
            if name in data and arg.nullable:
                out[name] = None
            elif arg.required:
                problems.append(f"argument {name!r} is required")
            continue
        try:
            out[name] = _coerce_value(value, arg)
        except ToolCallError as e:
            problems.append(str(e))
    unknown = sorted(set(data) - set(args))
    if unknown:
        logger.debug("ignoring unknown arguments {} for {}", unknown, fn_name)
    if problems:
        raise ToolCallError(f"invalid arguments for {fn_name}: " + "; ".join(problems))
    return out
