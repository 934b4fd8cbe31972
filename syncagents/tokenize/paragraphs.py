"""Paragraph splitting: paragraphs are separated by blank lines (whitespace-only lines)."""

from __future__ import annotations

import re

__all__ = ["split_paragraphs"]

_BLANK_LINES = re.compile(r"\n\s*\n")


def split_paragraphs(text: str) -> list[tuple[str, int, int]]:
    """Split ``text`` at blank lines.

    Args:
        text: any text; single line breaks stay inside a paragraph.

    Returns:
        ``(paragraph, start, end)`` for each non-empty paragraph, stripped, with
        ``text[start:end] == paragraph``.
    """
    out: list[tuple[str, int, int]] = []
    start = 0
    bounds = [(m.start(), m.end()) for m in _BLANK_LINES.finditer(text)]
    for end, next_start in [*bounds, (len(text), len(text))]:
        chunk = text[start:end]
        stripped = chunk.strip()
        if stripped:
            first = start + chunk.index(stripped)
            out.append((stripped, first, first + len(stripped)))
        start = next_start
    return out
