"""Word splitting, incremental: a word is complete once whitespace follows it.

With ``split_character`` every character of the scripts written without spaces (CJK
ideographs, kana, Thai) is a word of its own, complete as soon as it arrives; text between
them (punctuation such as "。", Latin words) still ends at whitespace or at the next such
character. With ``retain_format`` a word keeps the whitespace before it, so joining the words
gives back the text.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from typing import Any

__all__ = ["split_word_spans", "strip_punctuation", "word_splitter"]

Span = tuple[str, int, int]

# kana and CJK ideographs (with extension A and compatibility ideographs), Thai
_CHAR_WORD = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u0e00-\u0e7f]")
_WORD = re.compile(r"\S+")


def _is_punct(ch: str) -> bool:
    return unicodedata.category(ch).startswith("P")


def strip_punctuation(word: str) -> str:
    """Drops punctuation around a word but keeps it inside ("don't", "3.14", "well-known")."""
    start, end = 0, len(word)
    while start < end and _is_punct(word[start]):
        start += 1
    while end > start and _is_punct(word[end - 1]):
        end -= 1
    return word[start:end]


def _pieces(text: str, start: int, end: int, split_character: bool) -> list[tuple[int, int]]:
    """A whitespace-delimited run cut into words: itself, or around char-words."""
    if not split_character:
        return [(start, end)]
    out: list[tuple[int, int]] = []
    piece = start
    for m in _CHAR_WORD.finditer(text, start, end):
        if m.start() > piece:
            out.append((piece, m.start()))
        out.append((m.start(), m.end()))
        piece = m.end()
    if piece < end:
        out.append((piece, end))
    return out


def split_word_spans(
    text: str,
    final: bool,
    scan_from: int = 0,
    *,
    ignore_punctuation: bool = True,
    split_character: bool = False,
    retain_format: bool = False,
) -> tuple[list[Span], int, int]:
    """Splitter (see ``token_stream``) for words: ``(word, start, end)`` with ``[start, end)``
    the word's slice (with ``retain_format``, from the end of the previous word).

    Args:
        text: the text seen so far.
        final: no more text will come.
        scan_from: where the previous call stopped.
        ignore_punctuation: drop punctuation around words (words of punctuation only vanish).
        split_character: see the module docstring.
        retain_format: see the module docstring.
    """
    out: list[Span] = []
    consumed = scan_from
    n = len(text)
    for m in _WORD.finditer(text, scan_from):
        pieces = _pieces(text, m.start(), m.end(), split_character)
        for start, end in pieces:
            if end >= n and not final and not (
                split_character and _CHAR_WORD.fullmatch(text[start:end])
            ):
                # the word may continue in the next chunk; a char-word is already whole
                return out, consumed, consumed
            word = text[start:end]
            if ignore_punctuation:
                word = strip_punctuation(word)
            if word:
                lead = text[consumed:start] if retain_format else ""
                out.append((lead + word, consumed if retain_format else start, end))
            consumed = end  # a word of punctuation only vanishes, with the space before it
    if final:
        return out, n, n
    return out, consumed, consumed


def word_splitter(
    *, ignore_punctuation: bool = True, split_character: bool = False,
    retain_format: bool = False,
) -> Callable[[str, bool, int], Any]:
    """A ``Splitter`` for words with these options (see ``split_word_spans``)."""

    def split(text: str, final: bool, scan_from: int) -> tuple[list[Span], int, int]:
        return split_word_spans(
            text, final, scan_from, ignore_punctuation=ignore_punctuation,
            split_character=split_character, retain_format=retain_format,
        )

    return split
