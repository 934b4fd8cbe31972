"""Parameters of AI functions: reading their annotations, describing them as JSON schema, and
turning the JSON arguments a model sends into the Python values the function expects.

Models are sloppy with JSON types ("3" for 3, 3 for 3.0, "true" for true), so coercion is
lenient where the meaning is unambiguous and strict everywhere else: a value that cannot be
read as the declared type is an error the model gets to see, never a crash.

Plain scalars, enums and lists of them are handled here without dependencies. Parameters
that need more (a pydantic model, ``Field(ge=, le=, pattern=, description=, default=)``
constraints, ``Literal``, unions, dicts, nested lists) go through pydantic, imported only
when such a parameter is declared: its JSON schema becomes the parameter's schema and its
(lax) validation checks and converts the model's value.
"""

from __future__ import annotations

import copy
import enum
import inspect
import json
import math
import sys
import types
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Union, get_args, get_origin

from loguru import logger

from .json_repair import parse_tool_arguments

__all__ = [
    "FunctionArgInfo",
    "ToolCallError",
    "TypeInfo",
    "arg_json_schema",
    "build_arg_info",
    "coerce_arguments",
    "read_arguments",
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
    ``enum.Enum`` subclass, or ``list[...]`` of one of those; for parameters validated by
    pydantic (``validated``), whatever type pydantic accepts. ``choices`` are the allowed values
    (of the items, for lists); for enums they are the members' values. ``default`` is
    ``inspect.Parameter.empty`` for required parameters (a pydantic ``Field``'s default is
    unwrapped; ``default_factory`` is set instead for ``Field(default_factory=...)``).
    ``schema`` is the parameter's JSON schema when pydantic built it (``$defs`` included).
    """

    name: str
    description: str
    type: Any
    default: Any = inspect.Parameter.empty
    choices: tuple[Any, ...] = ()
    nullable: bool = False
    schema: dict[str, Any] | None = field(default=None, compare=False)
    default_factory: Callable[[], Any] | None = field(default=None, repr=False, compare=False)
    fill_default: bool = field(default=False, repr=False, compare=False)
    """The Python default cannot stand in (it is a ``Field(...)``): pass ``default`` ourselves."""
    validator: Callable[[Any], Any] | None = field(default=None, repr=False, compare=False)

    @property
    def required(self) -> bool:
        """Whether the model must pass the argument: it has no default nor default factory."""
        return self.default is inspect.Parameter.empty and self.default_factory is None

    @property
    def validated(self) -> bool:
        """Whether pydantic checks this parameter (see the module docstring)."""
        return self.validator is not None

    def default_value(self) -> Any:
        """The value an omitted argument takes (a fresh one from ``default_factory``)."""
        if self.default_factory is not None:
            return self.default_factory()
        return self.default

    @property
    def is_list(self) -> bool:
        """Whether ``type`` is ``list[...]``."""
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


def _unwrap(hint: Any) -> tuple[Any, TypeInfo | None, bool, list[Any]]:
    """Peel ``Annotated`` and ``Optional`` in any nesting (Python 3.10's get_type_hints wraps
    ``Annotated[...] = None`` parameters in ``Optional``); also returns the other metadata."""
    info: TypeInfo | None = None
    nullable = False
    others: list[Any] = []
    while True:
        hint, opt = _strip_optional(hint)
        nullable = nullable or opt
        if get_origin(hint) is Annotated:
            base, *extras = get_args(hint)
            info = info or next((e for e in extras if isinstance(e, TypeInfo)), None)
            others.extend(e for e in extras if not isinstance(e, TypeInfo))
            hint = base
            continue
        return hint, info, nullable, others


def _is_field_info(obj: Any) -> bool:
    # pydantic is only looked at if the user's code already imported it
    fields_mod = sys.modules.get("pydantic.fields")
    return fields_mod is not None and isinstance(obj, fields_mod.FieldInfo)


def _is_model(t: Any) -> bool:
    pyd = sys.modules.get("pydantic")
    return pyd is not None and isinstance(t, type) and issubclass(t, pyd.BaseModel)


def _mentions_pydantic(hint: Any, default: Any) -> bool:
    if _is_field_info(default):
        return True
    stack = [hint]
    while stack:
        t = stack.pop()
        if _is_model(t) or _is_field_info(t):
            return True
        stack.extend(get_args(t))
    return False


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


def build_arg_info(
    fn_name: str, param: inspect.Parameter, hint: Any, doc_description: str = ""
) -> FunctionArgInfo:
    """Describe ``param`` of ``fn_name`` from its resolved annotation; TypeError if unsupported.

    Args:
        fn_name: the function's name, for error messages.
        param: the parameter, from ``inspect.signature``.
        hint: its resolved annotation (``typing.get_type_hints(..., include_extras=True)``).
        doc_description: its description from the docstring, used when the annotation gives
            none (``TypeInfo(description=)`` or ``Field(description=)`` win).
    """
    if _mentions_pydantic(hint, param.default):
        return _validated_arg_info(fn_name, param, hint, doc_description)
    try:
        base, info, nullable, _ = _unwrap(hint)
    except TypeError as e:
        return _fallback_arg_info(fn_name, param, hint, doc_description, e)
    if get_origin(base) is list or base is list:
        items = get_args(base)
        if len(items) != 1:
            raise TypeError(f"{fn_name}.{param.name}: list parameters need an item type")
        try:
            item, _, _, _ = _unwrap(items[0])
            _scalar_json_type(item)
        except TypeError as e:
            return _fallback_arg_info(fn_name, param, hint, doc_description, e)
        base = list[item]  # type: ignore[valid-type]
    else:
        item = base
    try:
        _scalar_json_type(item)
    except TypeError as e:
        return _fallback_arg_info(fn_name, param, hint, doc_description, e)

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
        description=(info.description if info else "") or doc_description,
        type=base,
        default=param.default,
        choices=choices,
        nullable=nullable or param.default is None,
    )


# bare containers and catch-alls say nothing a model could follow
_TOO_VAGUE = (dict, list, tuple, set, object, Any)


def _fallback_arg_info(
    fn_name: str, param: inspect.Parameter, hint: Any, doc_description: str, err: TypeError
) -> FunctionArgInfo:
    """Types the plain path does not know (Literal, unions, dicts, nested lists...) go to
    pydantic when it is installed; otherwise the original error stands."""
    if _unwrap_annotated(hint) in _TOO_VAGUE:
        raise TypeError(f"{fn_name}.{param.name}: {err}") from None
    try:
        import pydantic  # noqa: F401
    except ImportError:
        raise TypeError(f"{fn_name}.{param.name}: {err} (or install pydantic)") from None
    return _validated_arg_info(fn_name, param, hint, doc_description)


def _unwrap_annotated(hint: Any) -> Any:
    while get_origin(hint) is Annotated:
        hint = get_args(hint)[0]
    return hint


def _validated_arg_info(
    fn_name: str, param: inspect.Parameter, hint: Any, doc_description: str
) -> FunctionArgInfo:
    """A parameter checked by pydantic: one single-field model gives its schema (with
    constraints, description and default) and validates the model's value."""
    import pydantic
    from pydantic_core import PydanticUndefined

    where = f"{fn_name}.{param.name}"
    info: TypeInfo | None = None
    nullable = param.default is None
    try:
        _, info, opt, _ = _unwrap(hint)
        nullable = nullable or opt
    except TypeError:  # a union other than Optional: pydantic reads it
        nullable = nullable or type(None) in get_args(_unwrap_annotated(hint))
    default = param.default if param.default is not inspect.Parameter.empty else PydanticUndefined
    try:
        model = pydantic.create_model(  # type: ignore[call-overload]
            f"{fn_name}_{param.name}",
            __config__=pydantic.ConfigDict(
                coerce_numbers_to_str=True, arbitrary_types_allowed=False
            ),
            **{param.name: (hint, default)},
        )
        full = model.model_json_schema()
    except Exception as e:  # unsupported types, bad constraints: at declaration, not mid-call
        raise TypeError(f"{where}: pydantic cannot describe this parameter ({e})") from None
    fld = model.model_fields[param.name]
    schema: dict[str, Any] = dict(full["properties"][param.name])
    schema.pop("title", None)  # pydantic's title-cased parameter name adds nothing
    if "$defs" in full:
        schema["$defs"] = full["$defs"]
    description = (info.description if info else "") or fld.description or doc_description
    if description and not schema.get("description"):
        schema["description"] = description
    has_default = fld.default is not PydanticUndefined
    factory = fld.default_factory if fld.default_factory is not None else None
    name = param.name

    def validate(value: Any) -> Any:
        try:
            return getattr(model.model_validate({name: value}), name)
        except pydantic.ValidationError as e:
            raise ToolCallError("; ".join(_pydantic_problem(err) for err in e.errors())) from None

    choices: tuple[Any, ...] = tuple(info.choices) if info else ()
    return FunctionArgInfo(
        name=name,
        description=description or "",
        type=_unwrap_annotated(hint),
        default=fld.default if has_default else inspect.Parameter.empty,
        choices=choices,
        nullable=nullable,
        schema=schema,
        default_factory=factory,  # type: ignore[arg-type]
        # the Python default is the Field object itself, or absent with Annotated[..., Field()]
        fill_default=(has_default or factory is not None)
        and (_is_field_info(param.default) or param.default is inspect.Parameter.empty),
        validator=validate,
    )


def _pydantic_problem(err: Any) -> str:
    loc = ".".join(str(p) for p in err.get("loc", ()))
    msg = str(err.get("msg", "is invalid"))
    value = err.get("input")
    got = f", got {json.dumps(value, default=repr)}" if err.get("type") != "missing" else ""
    return f"argument {loc!r}: {msg[:1].lower()}{msg[1:]}{got}"


def arg_json_schema(arg: FunctionArgInfo) -> dict[str, Any]:
    """The JSON schema of one parameter, as OpenAI-style tools expect it (for parameters
    checked by pydantic, with its ``$defs`` that ``FunctionInfo.json_schema`` hoists)."""
    if arg.schema is not None:
        validated = copy.deepcopy(arg.schema)
        if arg.choices and "enum" not in validated:
            validated["enum"] = list(arg.choices)
        return validated
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
    if arg.validator is not None:
        return _check_choice(arg.validator(value), arg, where)
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


def read_arguments(fn_name: str, raw_arguments: str | dict[str, Any] | None) -> dict[str, Any]:
    """The arguments of a call to ``fn_name`` as a dict, malformed JSON repaired (see
    ``json_repair``); ``ToolCallError`` when they cannot be read as a JSON object."""
    try:
        data, _ = parse_tool_arguments(raw_arguments)
    except ValueError as e:
        if str(e).startswith("expected a JSON object"):
            raise ToolCallError(
                f"the arguments for {fn_name} must be a JSON object ({e}); call it again "
                "with a JSON object"
            ) from None
        raise ToolCallError(
            f"the arguments for {fn_name} are not valid JSON ({e}); call it again with "
            "the arguments as one JSON object"
        ) from None
    return data


def coerce_arguments(
    fn_name: str, args: dict[str, FunctionArgInfo], raw_arguments: str | dict[str, Any] | None
) -> dict[str, Any]:
    """Parse and check a model's arguments for ``fn_name``: a dict of keyword arguments.

    Missing optional arguments (and ``null`` for them) are left out so the function's default
    applies; unknown arguments are ignored. Raises ``ToolCallError`` naming every problem.
    """
    data = read_arguments(fn_name, raw_arguments)
    out: dict[str, Any] = {}
    problems: list[str] = []
    for name, arg in args.items():
        value = data.get(name)
        if value is None:
            if name in data and arg.nullable:
                out[name] = None
            elif arg.required:
                problems.append(f"argument {name!r} is required")
            elif arg.fill_default:
                out[name] = arg.default_value()
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
