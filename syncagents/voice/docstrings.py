"""Reading a tool's docstring: its description, and one description per parameter.

Three common styles are understood (what livekit-agents users write, through
``docstring_parser`` there):

* Google: an ``Args:`` (or ``Arguments:``, ``Parameters:``, ``Params:``, ``Keyword Args:``)
  section of ``name: text`` / ``name (type): text`` lines, continued by deeper indentation;
* Sphinx: ``:param name: text`` (or ``:param type name: text``) fields;
* NumPy: a ``Parameters`` title underlined with dashes, ``name : type`` lines with the
  text indented below.

The description is what comes before the first section or field. Other sections
(``Returns:``, ``Raises:``, ...) are left out of both.
"""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass, field

__all__ = ["ParsedDocstring", "parse_docstring"]

_GOOGLE_ARGS = {"args", "arguments", "parameters", "params", "keyword args", "keyword arguments"}
_GOOGLE_OTHER = {
    "returns", "return", "yields", "yield", "raises", "raise", "note", "notes", "example",
    "examples", "see also", "warning", "warnings", "attributes", "todo", "references",
}
_GOOGLE_HEADER = re.compile(r"^([A-Za-z][A-Za-z ]*):\s*$")
_GOOGLE_PARAM = re.compile(r"^\*{0,2}(\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$")
_SPHINX_FIELD = re.compile(r"^:(\w+)(?:\s+([^:]*?))?:\s*(.*)$")
_NUMPY_UNDERLINE = re.compile(r"^-{3,}\s*$")
_NUMPY_PARAM = re.compile(r"^\*{0,2}(\w+)(?:\s*:.*)?$")


@dataclass
class ParsedDocstring:
    """``description`` (the docstring without its sections) and ``params`` (name → text)."""

    description: str = ""
    params: dict[str, str] = field(default_factory=dict)


def _join(lines: list[str]) -> str:
    return " ".join(line.strip() for line in lines if line.strip())


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def parse_docstring(doc: str | None) -> ParsedDocstring:
    """Parse ``doc`` (raw or already cleaned with ``inspect.cleandoc``)."""
    if not doc:
        return ParsedDocstring()
    lines = inspect.cleandoc(doc).splitlines()
    description: list[str] = []
    params: dict[str, str] = {}
    in_description = True
    i = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        # NumPy: a title, then a line of dashes
        if i + 1 < len(lines) and stripped and _NUMPY_UNDERLINE.match(lines[i + 1].strip()):
            in_description = False
            title = stripped.lower()
            i += 2
            body: list[str] = []
            while i < len(lines) and not (
                i + 1 < len(lines)
                and lines[i].strip()
                and _NUMPY_UNDERLINE.match(lines[i + 1].strip())
            ):
                body.append(lines[i])
                i += 1
            if title in ("parameters", "other parameters", "keyword arguments"):
                _numpy_params(body, params)
            continue
        header = _GOOGLE_HEADER.match(stripped) if _indent(line) == 0 else None
        if header and header.group(1).lower() in _GOOGLE_ARGS | _GOOGLE_OTHER:
            in_description = False
            is_args = header.group(1).lower() in _GOOGLE_ARGS
            i += 1
            body = []
            while i < len(lines) and (not lines[i].strip() or _indent(lines[i]) > 0):
                body.append(lines[i])
                i += 1
            if is_args:
                _google_params(body, params)
            continue
        sphinx = _SPHINX_FIELD.match(stripped) if _indent(line) == 0 else None
        if sphinx:
            in_description = False
            kind, target, text = sphinx.groups()
            i += 1
            more = [text]
            while i < len(lines) and lines[i].strip() and _indent(lines[i]) > 0:
                more.append(lines[i])
                i += 1
            if kind in ("param", "parameter", "arg", "argument", "key", "keyword") and target:
                params[target.split()[-1]] = _join(more)
            continue
        if in_description:
            description.append(line)
        i += 1
    # paragraphs of the description keep their breaks; lines within one are joined
    paragraphs = "\n".join(description).strip().split("\n\n")
    text = "\n\n".join(_join(p.splitlines()) for p in paragraphs if p.strip())
    return ParsedDocstring(description=text, params=params)


def _google_params(body: list[str], params: dict[str, str]) -> None:
    base = min((_indent(line) for line in body if line.strip()), default=0)
    name: str | None = None
    text: list[str] = []
    for line in body:
        if line.strip() and _indent(line) == base:
            if name is not None:
                params[name] = _join(text)
            match = _GOOGLE_PARAM.match(line.strip())
            name, text = (match.group(1), [match.group(2)]) if match else (None, [])
        elif name is not None:
            text.append(line)
    if name is not None:
        params[name] = _join(text)


def _numpy_params(body: list[str], params: dict[str, str]) -> None:
    base = min((_indent(line) for line in body if line.strip()), default=0)
    names: list[str] = []
    text: list[str] = []

    def flush() -> None:
        for n in names:
            params[n] = _join(text)

    for line in body:
        if line.strip() and _indent(line) == base:
            flush()
            head = line.strip().split(":", 1)[0]
            # "x, y : int" documents two parameters at once
            names = [n.strip().lstrip("*") for n in head.split(",") if n.strip()]
            names = [n for n in names if _NUMPY_PARAM.match(n)]
            text = []
        elif names:
            text.append(line)
    flush()
