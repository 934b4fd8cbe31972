"""English hyphenation (Frank Liang's algorithm, TeX's patterns): ``hyphenate_word``.

Transcription sync splits words into syllable-like pieces to pace text against speech; this
is the rule-based English default, as in livekit-agents. Each pattern such as ``a1bc3d`` puts
a weight between letters; the highest weight at each gap wins, odd means a break is allowed.
"""

from __future__ import annotations

import functools
import re

from ._hyphen_data import EXCEPTIONS, KNUTH_PATTERNS, KUIKEN_PATTERNS

__all__ = ["Hyphenator", "hyphenate_word"]

# TeX's \lefthyphenmin / \righthyphenmin for English: no piece shorter than two letters
_MIN_EDGE = 2
# words this short are never broken
_MAX_UNBROKEN = 4


class Hyphenator:
    """Hyphenates with Liang's algorithm from whitespace-separated ``patterns`` (``a1bc3d``)
    and ``exceptions`` given hyphenated (``as-so-ciate``).

    Args:
        patterns: the patterns; ``.`` marks a word edge.
        exceptions: words whose breaks are given instead of computed.
    """

    def __init__(self, patterns: str, exceptions: str = "") -> None:
        # pattern letters -> weights at each gap (one more than the letters)
        self._weights: dict[str, tuple[int, ...]] = {}
        self._max_len = 0
        for pattern in patterns.split():
            letters = re.sub(r"\d", "", pattern)
            weights = [0] * (len(letters) + 1)
            pos = 0
            for ch in pattern:
                if ch.isdigit():
                    weights[pos] = int(ch)
                else:
                    pos += 1
            self._weights[letters] = tuple(weights)
            self._max_len = max(self._max_len, len(letters))
        self._exceptions: dict[str, list[int]] = {}
        for word in exceptions.split():
            # the gap after each letter: 1 where the exception has a hyphen
            gaps: list[int] = []
            for ch in word:
                if ch == "-":
                    gaps[-1] = 1
                else:
                    gaps.append(0)
            self._exceptions[word.replace("-", "")] = gaps

    def _gaps(self, lower: str) -> list[int]:
        """Weight of the gap after each letter of ``lower`` (odd: may break there)."""
        if lower in self._exceptions:
            return list(self._exceptions[lower])
        work = f".{lower}."
        weights = [0] * (len(work) + 1)
        for start in range(len(work)):
            for end in range(start + 1, min(len(work), start + self._max_len) + 1):
                found = self._weights.get(work[start:end])
                if found is not None:
                    for k, w in enumerate(found):
                        if w > weights[start + k]:
                            weights[start + k] = w
        # weights[i] is the gap before work[i]; the gap after letter j (0-based) is j + 2
        return [weights[j + 2] for j in range(len(lower))]

    def hyphenate_word(self, word: str) -> list[str]:
        """The pieces of ``word`` between allowed hyphenation points (case kept).

        Args:
            word: one word; words of four letters or fewer come back whole.
        """
        if len(word) <= _MAX_UNBROKEN:
            return [word]
        gaps = self._gaps(word.lower())
        pieces: list[str] = []
        start = 0
        for i in range(_MIN_EDGE - 1, len(word) - _MIN_EDGE):
            if gaps[i] % 2:
                pieces.append(word[start : i + 1])
                start = i + 1
        pieces.append(word[start:])
        return pieces


@functools.cache
def _english() -> Hyphenator:
    return Hyphenator(KNUTH_PATTERNS + " " + KUIKEN_PATTERNS, EXCEPTIONS)


def hyphenate_word(word: str) -> list[str]:
    """Split an English word at its possible hyphenation points.

    Args:
        word: the word, e.g. "communication".

    Returns:
        The pieces, e.g. ``["com", "mu", "ni", "ca", "tion"]``; short words whole.
    """
    return _english().hyphenate_word(word)
