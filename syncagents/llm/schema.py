"""JSON-schema helpers for tools: OpenAI's strict form, and a light check of raw-schema calls.

Strict mode (``"strict": true`` on a tool) makes OpenAI constrain the model's output to the
schema, but only accepts schemas where every object lists all its properties as required and
forbids others. Optional parameters therefore become nullable instead: the model sends
``null`` and the function's default applies (``coerce_arguments`` treats a ``null`` for an
optional parameter as "not given").
"""

from __future__ import annotations

import copy
from typing import Any

from .arguments import ToolCallError

__all__ = ["check_json_schema_arguments", "to_strict_json_schema"]

_NESTED_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")
_NESTED_MAPS = ("$defs", "definitions")


def to_strict_json_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``schema`` in the form OpenAI's strict mode accepts.

    Every object gets ``additionalProperties: false`` and all its properties required, the
    ones that were optional made nullable; ``default`` values are dropped (strict mode rejects
    them); a ``$ref`` with sibling keywords is inlined. Nested objects, array items, unions and
    ``$defs`` are converted too.

    Args:
        schema: a JSON schema for an object (a tool's ``parameters``).
    """
    root = copy.deepcopy(schema)
    return _strict(root, root)


def _resolve(root: dict[str, Any], ref: str) -> dict[str, Any]:
    if not ref.startswith("#/"):
        raise ValueError(f"only local $ref are supported, got {ref!r}")
    node: Any = root
    for part in ref[2:].split("/"):
        node = node[part]
    if not isinstance(node, dict):
        raise ValueError(f"$ref {ref!r} does not point to a schema")
    return node


def _nullable(node: dict[str, Any]) -> dict[str, Any]:
    kind = node.get("type")
    if isinstance(kind, str) and "$ref" not in node:
        if kind != "null":
            node["type"] = [kind, "null"]
            if "enum" in node and None not in node["enum"]:
                node["enum"] = [*node["enum"], None]
        return node
    if isinstance(kind, list):
        if "null" not in kind:
            node["type"] = [*kind, "null"]
            if "enum" in node and None not in node["enum"]:
                node["enum"] = [*node["enum"], None]
        return node
    if "anyOf" in node and "$ref" not in node:
        if not any(isinstance(o, dict) and o.get("type") == "null" for o in node["anyOf"]):
            node["anyOf"] = [*node["anyOf"], {"type": "null"}]
        return node
    description = node.pop("description", None)
    out: dict[str, Any] = {"anyOf": [node, {"type": "null"}]}
    if description:
        out["description"] = description
    return out


def _strict(node: Any, root: dict[str, Any]) -> Any:
    if not isinstance(node, dict):
        return node
    if "$ref" in node and len(node) > 1:
        # strict mode rejects keywords beside a $ref: inline the target under them
        target = copy.deepcopy(_resolve(root, node["$ref"]))
        rest = {k: v for k, v in node.items() if k != "$ref"}
        node = {**target, **rest}
    node.pop("default", None)
    props = node.get("properties")
    if node.get("type") == "object" or isinstance(props, dict):
        props = props if isinstance(props, dict) else {}
        required = set(node.get("required") or ())
        new_props: dict[str, Any] = {}
        for name, sub in props.items():
            sub = _strict(sub, root)
            if name not in required and isinstance(sub, dict):
                sub = _nullable(sub)
            new_props[name] = sub
        node["properties"] = new_props
        node["required"] = list(new_props)
        node["additionalProperties"] = False
        node.setdefault("type", "object")
    if isinstance(node.get("items"), dict):
        node["items"] = _strict(node["items"], root)
    for key in _NESTED_LISTS:
        if isinstance(node.get(key), list):
            node[key] = [_strict(sub, root) for sub in node[key]]
    for key in _NESTED_MAPS:
        if isinstance(node.get(key), dict):
            node[key] = {name: _strict(sub, root) for name, sub in node[key].items()}
    return node


_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "array": (list,),
    "object": (dict,),
    "null": (type(None),),
}


def _type_ok(value: Any, kind: Any) -> bool:
    kinds = kind if isinstance(kind, list) else [kind]
    for k in kinds:
        types_ = _JSON_TYPES.get(k)
        if types_ is None:
            return True  # a type we do not know: do not second-guess it
        if isinstance(value, bool) and k in ("integer", "number"):
            continue
        if k == "integer" and isinstance(value, float) and value.is_integer():
            return True
        if isinstance(value, types_):
            return True
    return False


def check_json_schema_arguments(
    fn_name: str, schema: dict[str, Any], arguments: dict[str, Any]
) -> None:
    """A light check of a raw-schema tool's arguments: required properties present, and the
    top-level properties' ``type`` and ``enum`` respected. It is not a full validator: the
    function still gets the dict and may check more.

    Raises:
        ToolCallError: naming every problem, phrased for the model.
    """
    problems: list[str] = []
    props = schema.get("properties") if isinstance(schema.get("properties"), dict) else {}
    for name in schema.get("required") or ():
        if name not in arguments:
            problems.append(f"argument {name!r} is required")
    for name, sub in (props or {}).items():
        if name not in arguments or not isinstance(sub, dict):
            continue
        value = arguments[name]
        if value is None and name not in (schema.get("required") or ()):
            continue
        if "type" in sub and not _type_ok(value, sub["type"]):
            problems.append(f"argument {name!r} must be of type {sub['type']}, got {value!r}")
        elif "enum" in sub and value not in sub["enum"]:
            allowed = ", ".join(repr(v) for v in sub["enum"])
            problems.append(f"argument {name!r} must be one of {allowed}, got {value!r}")
    if problems:
        raise ToolCallError(f"invalid arguments for {fn_name}: " + "; ".join(problems))
