"""Reading a tool's description and its parameters' descriptions from its docstring.

Google style is the one livekit-agents users write (``Args:`` with ``name: text`` or
``name (type): text`` entries, continued on more-indented lines); Sphinx ``:param name:``
fields are read too. The description the model sees is the text before the first section,
so it does not repeat what the parameters' own descriptions say.
"""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass, field

__all__ = ["ParsedDocstring", "parse_docstring"]

_ARG_SECTIONS = frozenset({
    "args", "arguments", "parameters", "params", "keyword args", "keyword arguments",
    "kwargs", "other parameters",
})
_OTHER_SECTIONS = frozenset({
    "returns", "return", "yields", "yield", "raises", "raise", "examples", "example",
    "notes", "note", "attributes", "see also", "warnings", "warning", "todo", "references",
})
_SECTION = re.compile(r"^([A-Za-z][A-Za-z ]*?)\s*:\s*$")
_ENTRY = re.compile(r"^\*{0,2}(\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$")
_SPHINX = re.compile(r"^:param\s+(?:[^:]*\s)?(\w+)\s*:\s*(.*)$")


@dataclass
class ParsedDocstring:
    """``description``: the text before any section; ``params``: name → description."""

    description: str = ""
    params: dict[str, str] = field(default_factory=dict)


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def parse_docstring(doc: str | None) -> ParsedDocstring:
    """Split a docstring into the function's description and its parameters' descriptions.

    Args:
        doc: the raw docstring (``fn.__doc__``) or None.
    """
    if not doc:
        return ParsedDocstring()
    lines = inspect.cleandoc(doc).splitlines()
    description: list[str] = []
    params: dict[str, str] = {}
    section: str | None = None  # None: the description; "args"; "other"
    entry_indent = -1
    current: str | None = None
    for line in lines:
        stripped = line.strip()
        header = _SECTION.match(stripped) if _indent(line) == 0 else None
        if header is not None and header.group(1).lower() in _ARG_SECTIONS | _OTHER_SECTIONS:
            section = "args" if header.group(1).lower() in _ARG_SECTIONS else "other"
            entry_indent, current = -1, None
            continue
        sphinx = _SPHINX.match(stripped)
        if sphinx is not None:
            current = sphinx.group(1)
            params[current] = sphinx.group(2).strip()
            section, entry_indent = "sphinx", _indent(line)
            continue
        if stripped.startswith(":") and section in (None, "sphinx"):
            section, current = "other", None  # :returns:, :raises: ...
            continue
        if section is None:
            description.append(line)
            continue
        if section == "other" or not stripped:
            continue
        indent = _indent(line)
        entry = _ENTRY.match(stripped)
        if section == "args" and entry is not None and (entry_indent < 0 or indent <= entry_indent):
            entry_indent = indent
            current = entry.group(1)
            params[current] = entry.group(2).strip()
        elif current is not None and indent > entry_indent:
            params[current] = f"{params[current]} {stripped}".strip()
    return ParsedDocstring(description="\n".join(description).strip(), params=params)
