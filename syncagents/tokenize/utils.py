"""Text helpers for TTS input: ``replace_words``, batch or streamed.

Replacements fix what a TTS mispronounces ("LiveKit" -> "Live Kit", "SQL" -> "sequel").
They match whole words, case-insensitively; punctuation around a word stays ("world," ->
"universe,"), and a key may itself end in punctuation ("a.b.c"): the longest match wins.
Streamed text is replaced word by word as soon as each word is complete (whitespace after
it), so a word split across chunks is still found, and the output, joined, equals
``replace_words`` of the whole text.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import overload

from .words import _is_punct, split_word_spans

__all__ = ["WordReplacer", "replace_words"]


class WordReplacer:
    """Replaces words in text pushed in pieces.

    ``push(text)`` returns the replaced text that is final so far (up to the last complete
    word); ``flush()`` returns the rest at the end of the text and starts over.

    Args:
        replacements: word -> replacement; keys are matched case-insensitively and must be
            single words (no whitespace).
    """

    def __init__(self, replacements: Mapping[str, str]) -> None:
        table: dict[str, str] = {}
        for key, value in replacements.items():
            if not isinstance(key, str) or not isinstance(value, str):
                raise TypeError("replace_words: replacements must map str to str")
            if not key or any(c.isspace() for c in key):
                raise ValueError(
                    f"replace_words: keys must be single words, got {key!r} (it would never match)"
                )
            table[key.lower()] = value
        self._table = table
        self._buf = ""

    def _replace_word(self, word: str) -> str:
        """``word`` as written (punctuation included) with its replacement, if any."""
        table = self._table
        # the longest key first: trailing punctuation may belong to the key ("a.b.c.")
        for lead in range(len(word)):
            if lead and not _is_punct(word[lead - 1]):
                break
            end = len(word)
            while end > lead:
                hit = table.get(word[lead:end].lower())
                if hit is not None:
                    return word[:lead] + hit + word[end:]
                if not _is_punct(word[end - 1]):
                    break
                end -= 1
        return word

    def _replace(self, text: str, final: bool) -> tuple[str, int]:
        spans, consumed, _ = split_word_spans(text, final, 0, ignore_punctuation=False)
        out: list[str] = []
        pos = 0
        for word, start, end in spans:
            out.append(text[pos:start])
            out.append(self._replace_word(word))
            pos = end
        out.append(text[pos:consumed])
        return "".join(out), consumed

    def push(self, text: str) -> str:
        """Add text; returns the replaced text up to the last complete word."""
        self._buf += text
        out, consumed = self._replace(self._buf, final=False)
        self._buf = self._buf[consumed:]
        return out

    def flush(self) -> str:
        """The rest of the text, replaced; the replacer is then ready for a new text."""
        out, _ = self._replace(self._buf, final=True)
        self._buf = ""
        return out


@overload
def replace_words(  # type: ignore[overload-overlap]  # a str is also an Iterable[str]
    *, text: str, replacements: Mapping[str, str]
) -> str: ...


@overload
def replace_words(*, text: Iterable[str], replacements: Mapping[str, str]) -> Iterator[str]: ...


def replace_words(
    *, text: str | Iterable[str], replacements: Mapping[str, str]
) -> str | Iterator[str]:
    """Replace words in ``text`` (see the module docstring).

    Args:
        text: a str, or an iterable of str pieces (e.g. an LLM's deltas); iterating the
            result then pulls pieces as needed and yields replaced text as words complete.
        replacements: word -> replacement, matched case-insensitively.

    Returns:
        The replaced str, or an iterator of replaced pieces (never empty ones).
    """
    replacer = WordReplacer(replacements)  # checks the table now, not at the first piece
    if isinstance(text, str):
        return replacer.push(text) + replacer.flush()

    def pieces() -> Iterator[str]:
        for chunk in text:
            out = replacer.push(chunk)
            if out:
                yield out
        rest = replacer.flush()
        if rest:
            yield rest

    return pieces()
