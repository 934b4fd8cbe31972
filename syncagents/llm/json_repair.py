"""Reading the JSON arguments of tool calls, repairing what small models get wrong.

Local models often emit arguments that are almost JSON: cut off before the closing braces,
single-quoted, with unquoted keys or trailing commas, wrapped in a markdown code fence, or
followed by a chat-template token such as ``<|im_end|>`` or ``</tool_call>``. Rejecting
them wastes a round trip; worse, re-sending the broken text as ``arguments`` in the next
request makes strict servers reject the whole chat. ``parse_tool_arguments`` therefore
accepts valid JSON as is, repairs the common malformations with a lenient parser, and says
whether it had to, so callers can store the repaired JSON instead of the original text.
"""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = ["is_json_object", "loads_strict", "parse_tool_arguments", "repair_json"]

# chat-template and tool-call markers that leak into a model's output (ChatML/Qwen, Llama,
# Gemma, Mistral, Hermes-style tool tags); removed only when the text is not valid JSON
_TEMPLATE_TOKENS = re.compile(
    r"<\|[^<>|]{0,40}\|>"  # <|im_end|>, <|eot_id|>, <|python_tag|> ...
    r"|</?tool_calls?>"
    r"|</?function_calls?>"
    r"|<(?:start|end)_of_turn>"
    r"|</?s>|<eos>|<bos>"
    r"|\[/?TOOL_CALLS\]|\[/?TOOL_RESULTS\]"
)
_FENCE_OPEN = re.compile(r"^\s*```[A-Za-z0-9_-]*[ \t]*\n?")
_FENCE_CLOSE = re.compile(r"\n?[ \t]*```\s*$")
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_PARTIAL_NUMBER = re.compile(r"[+-]?\d*\.?\d*(?:[eE][+-]?)?")
_BARE_END = frozenset(",}]\n")
_WORDS: dict[str, Any] = {
    "true": True, "false": False, "null": None, "True": True, "False": False, "None": None,
}


class _Truncated(Exception):
    """The text ended inside a token that cannot be completed (``tr``, ``-``, a bare key)."""


class _Invalid(ValueError):
    pass


class _Lenient:
    """A recursive-descent JSON reader that tolerates the usual model mistakes.

    It accepts single quotes, unquoted keys and bare-word values, trailing or missing
    commas, Python's True/False/None, comments, and text that stops early (open strings
    and containers are closed; a key whose value never came is dropped).
    """

    def __init__(self, text: str) -> None:
        self.s = text
        self.i = 0
        self.n = len(text)

    def skip(self) -> None:
        s, n = self.s, self.n
        while self.i < n:
            c = s[self.i]
            if c.isspace():
                self.i += 1
            elif s.startswith("//", self.i):
                end = s.find("\n", self.i)
                self.i = n if end < 0 else end + 1
            elif s.startswith("/*", self.i):
                end = s.find("*/", self.i + 2)
                self.i = n if end < 0 else end + 2
            else:
                return

    def at_end(self) -> bool:
        self.skip()
        return self.i >= self.n

    def value(self) -> Any:
        if self.at_end():
            raise _Truncated()
        c = self.s[self.i]
        if c == "{":
            return self.obj()
        if c == "[":
            return self.arr()
        if c in "\"'":
            return self.string()
        m = _NUMBER.match(self.s, self.i)
        if m is not None and (m.end() >= self.n or not self.s[m.end()].isalpha()):
            self.i = m.end()
            text = m.group()
            if m.end() >= self.n and text[-1] in "+-.eE":
                raise _Truncated()
            number = float(text)
            if re.fullmatch(r"[+-]?\d+", text):
                return int(text)
            return number
        return self.bare()

    def bare(self) -> Any:
        start = self.i
        while self.i < self.n and self.s[self.i] not in _BARE_END:
            self.i += 1
        word = self.s[start : self.i].strip()
        if not word:
            raise _Invalid(f"unexpected {self.s[start:start + 1]!r} at offset {start}")
        if word in _WORDS:
            return _WORDS[word]
        if self.i >= self.n and (
            any(w.startswith(word) for w in _WORDS) or _PARTIAL_NUMBER.fullmatch(word)
        ):
            raise _Truncated()  # "tr" of a cut-off "true", "1.5e" of a cut-off number
        return word

    def string(self) -> str:
        quote = self.s[self.i]
        self.i += 1
        out: list[str] = []
        s, n = self.s, self.n
        while self.i < n:
            c = s[self.i]
            if c == quote:
                self.i += 1
                return "".join(out)
            if c == "\\" and self.i + 1 < n:
                e = s[self.i + 1]
                if e == "u" and re.fullmatch(r"[0-9a-fA-F]{4}", s[self.i + 2 : self.i + 6]):
                    out.append(chr(int(s[self.i + 2 : self.i + 6], 16)))
                    self.i += 6
                    continue
                out.append({"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f"}.get(e, e))
                self.i += 2
                continue
            out.append(c)
            self.i += 1
        return "".join(out)  # cut off inside the string: keep what came

    def key(self) -> str:
        if self.s[self.i] in "\"'":
            return self.string()
        start = self.i
        while self.i < self.n and self.s[self.i] not in ":,}\n" and not self.s[self.i].isspace():
            self.i += 1
        if self.i >= self.n:
            raise _Truncated()
        word = self.s[start : self.i]
        if not word:
            raise _Invalid(f"expected a key at offset {start}")
        return word

    def obj(self) -> dict[str, Any]:
        self.i += 1
        out: dict[str, Any] = {}
        while True:
            if self.at_end():
                return out
            c = self.s[self.i]
            if c == "}":
                self.i += 1
                return out
            if c == ",":
                self.i += 1
                continue
            if c == "]":
                raise _Invalid(f"unexpected ']' at offset {self.i}")
            try:
                key = self.key()
                if self.at_end():
                    return out
                if self.s[self.i] != ":":
                    raise _Invalid(f"expected ':' after key {key!r} at offset {self.i}")
                self.i += 1
                out[key] = self.value()
            except _Truncated:
                return out  # the last key never got (all of) its value

    def arr(self) -> list[Any]:
        self.i += 1
        out: list[Any] = []
        while True:
            if self.at_end():
                return out
            c = self.s[self.i]
            if c == "]":
                self.i += 1
                return out
            if c == ",":
                self.i += 1
                continue
            if c == "}":
                raise _Invalid(f"unexpected '}}' at offset {self.i}")
            try:
                out.append(self.value())
            except _Truncated:
                return out


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def loads_strict(text: str) -> Any:
    """``json.loads`` without Python's extensions (NaN, Infinity), which servers reject."""
    return json.loads(text, parse_constant=_reject_constant)


def is_json_object(text: str | None) -> bool:
    """Whether ``text`` is exactly valid JSON for an object (what ``arguments`` must be)."""
    if not text:
        return False
    try:
        return isinstance(loads_strict(text), dict)
    except ValueError:
        return False


def _clean(text: str) -> str:
    text = _TEMPLATE_TOKENS.sub("", text)
    text = _FENCE_OPEN.sub("", text, count=1)
    return _FENCE_CLOSE.sub("", text).strip()


def _strip_tokens(value: Any) -> Any:
    """Template tokens inside repaired string values are leaks too, never meant content."""
    if isinstance(value, str):
        return _TEMPLATE_TOKENS.sub("", value).strip()
    if isinstance(value, list):
        return [_strip_tokens(v) for v in value]
    if isinstance(value, dict):
        return {k: _strip_tokens(v) for k, v in value.items()}
    return value


def repair_json(text: str) -> Any:
    """Read ``text`` as JSON, repairing common model mistakes; ``ValueError`` if hopeless.

    Args:
        text: what the model sent, e.g. ``"{'city': 'Paris',"`` or
            ``'```json\\n{"city": "Paris"}\\n```<|im_end|>'``.

    Returns:
        The decoded value (for an object, a ``dict``). Text around the first object, such
        as "Here are the arguments:", is ignored.
    """
    try:
        return loads_strict(text)
    except ValueError:
        pass
    cleaned = _clean(text)
    start = cleaned.find("{")
    if start < 0:
        start = cleaned.find("[")
    reader = _Lenient(cleaned[start:] if start >= 0 else cleaned)
    try:
        if reader.at_end():
            raise _Invalid("no JSON value in the text")
        value = reader.value()
    except _Truncated:
        raise ValueError("the text ends before any value") from None
    except _Invalid as e:
        raise ValueError(str(e)) from None
    if start < 0 and isinstance(value, str):
        # a lone bare word is prose, not a repaired JSON value
        raise ValueError("no JSON in the text")
    return _strip_tokens(value)


def parse_tool_arguments(raw: str | dict[str, Any] | None) -> tuple[dict[str, Any], bool]:
    """The keyword arguments of a tool call as a dict, and whether they had to be repaired.

    Args:
        raw: the arguments as the model sent them: JSON text (possibly malformed), an
            already-decoded dict, or ``None``/empty for no arguments.

    Returns:
        ``(arguments, repaired)``: ``repaired`` is true when the text was not valid JSON as
        sent (the caller should then keep ``json.dumps(arguments)`` instead of it).

    Raises:
        ValueError: the text cannot be read as a JSON object, with the reason.
    """
    if raw is None:
        return {}, False
    if isinstance(raw, dict):
        return raw, False
    text = raw.strip()
    if not text:
        return {}, False
    repaired = False
    try:
        value: Any = loads_strict(text)
    except ValueError:
        value = repair_json(text)
        repaired = True
    # some servers encode the arguments twice ("{\"city\": ...}" as a JSON string)
    for _ in range(2):
        if not isinstance(value, str):
            break
        try:
            value = loads_strict(value)
        except ValueError:
            value = repair_json(value)
        repaired = True
    if value is None:
        return {}, True
    if not isinstance(value, dict):
        raise ValueError(f"expected a JSON object, got {type(value).__name__}")
    return value, repaired
