"""Whitespace word splitting, incremental: a word is complete once whitespace follows it."""

from __future__ import annotations

import re
import unicodedata

__all__ = ["split_words", "strip_punctuation"]

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


def split_words(
    text: str, final: bool, scan_from: int = 0, *, ignore_punctuation: bool = True
) -> tuple[list[str], int, int]:
    """Splitter (see ``token_stream``) for words."""
    out: list[str] = []
    consumed = 0
    n = len(text)
    for m in _WORD.finditer(text, scan_from):
        if m.end() >= n and not final:
            break  # the word may continue in the next chunk
        word = strip_punctuation(m.group()) if ignore_punctuation else m.group()
        if word:
            out.append(word)
        consumed = m.end()
    if final:
        return out, n, n
    return out, consumed, consumed
