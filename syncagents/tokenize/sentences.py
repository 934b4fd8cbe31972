"""Rule-based sentence splitting (English rules, CJK full stops) that decides incrementally.

A boundary candidate is a run of terminal punctuation, optional closing quotes or brackets,
then whitespace. Terminals are ``. ! ? …`` and those of other scripts: the Devanagari and
Bengali dandas ``। ॥``, Arabic ``؟ ؛``, Urdu ``۔``, Ethiopic ``። ፧ ፨``, Armenian ``։ ՜ ՞``
(these always end the sentence, like ``!``); the CJK ``。！？｡；``, Burmese ``။`` and Khmer
``។ ៕`` marks need no whitespace after them, since those scripts do not space words.
Whether a candidate really ends the sentence is decided from the word before it and at
most the next word, so a stream can tell when a decision is final: once the text after
the candidate is long enough that no appended text could change the outcome. That
locality is what makes streaming output equal to batch output (see ``token_stream``).

Rules for a candidate followed by the next word ``W``:
- ``!`` / ``?`` (alone or mixed with dots) and CJK marks end the sentence;
- an ellipsis (``..`` or more, or ``…``) ends it only before an uppercase letter
  ("Communication... again" stays whole, "Wait... What?" splits);
- after titles and Latin forms (Mr. Dr. St. e.g. i.e. vs. ...) a period never ends it;
- "No. 5" is a number, not an end;
- after abbreviations that often end sentences too (etc. Inc. Jr. U.S. a.m. ...), single
  initials and dotted acronyms (R.T.C.), a period ends it only when ``W`` is a typical
  sentence starter (He, The, This, Mr, ...): "the U.S. Army" stays whole, "in the U.S. They"
  splits;
- any other period ends it. Decimals ("3.14") and domains ("livekit.io") have no
  whitespace after the period, so they are never candidates.

Sentences are stripped and other whitespace characters become spaces (runs are kept), as
livekit-agents' basic tokenizer does. With ``retain_format`` they are the original slices
instead, whitespace and line breaks kept, and a line break also ends a sentence (lists and
headings are not run together); joined, they give back the text.

The splitter returns spans ``(sentence, start, end)``: ``[start, end)`` is the slice of the
text from the end of the previous sentence to the end of this one (so the spans of a text
are contiguous, leading whitespace belonging to the sentence after it).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

__all__ = ["sentence_splitter", "split_sentence_spans"]

# end a sentence with no whitespace after them (scripts that do not space their words)
_NO_SPACE_TERMINALS = "。！？｡；။។៕"
# always end a sentence once whitespace follows, like "!" and "?"
_STRONG_TERMINALS = "!?‼⁇⁈⁉।॥؟؛۔።፧፨։՜՞"
_TERM_RUN = re.compile(f"[.…{_NO_SPACE_TERMINALS}{_STRONG_TERMINALS}]+")
_NO_SPACE = frozenset(_NO_SPACE_TERMINALS)
_STRONG = frozenset(_STRONG_TERMINALS)
Span = tuple[str, int, int]
_CLOSERS = frozenset("\"'”’)]}»")
_OPENERS = frozenset("\"'“‘([{«")

# a period after these never ends a sentence: titles precede a name, Latin forms continue it
_NEVER_END = frozenset({
    "mr", "mrs", "ms", "dr", "prof", "st", "mt", "sen", "gov", "gen", "capt", "lt", "sgt",
    "rev", "fr", "e.g", "i.e", "cf", "vs", "approx"
})
# these end sentences as often as not: only a typical sentence starter after them splits
_MAY_END = frozenset({
    "etc", "inc", "ltd", "co", "corp", "jr", "sr", "u.s", "u.k", "a.m", "p.m", "ph.d", "al",
    "fig", "dept",
})
_STARTERS = frozenset({
    "I", "He", "She", "It", "They", "We", "You", "But", "However", "That", "This", "These",
    "Those", "The", "There", "Then", "And", "So", "A", "An", "In", "If", "What", "When",
    "Where", "Why", "How", "My", "Our", "Their", "His", "Her", "Its", "Your", "Mr", "Mrs",
    "Ms", "Dr", "Prof"
})
_ACRONYM = re.compile(r"(?:[A-Za-z]\.)+[A-Za-z]|[A-Za-z]")


def _word_before(text: str, start: int, end: int) -> str:
    """The whitespace-delimited word ending at ``end``, without opening quotes/brackets.

    ``start`` is the sentence start (the previous boundary), so the word never
    reaches back into the previous sentence.
    """
    i = end
    while i > start and not text[i - 1].isspace():
        i -= 1
    w = text[i:end]
    while w and w[0] in _OPENERS:
        w = w[1:]
    return w


def _is_boundary(
    text: str, sent_start: int, run_start: int, run_end: int, ws: int, final: bool
) -> bool | None:
    """Does the terminal run ``text[run_start:run_end]`` end the sentence?

    ``ws`` is the offset of the whitespace after the run and its closers. ``None`` means the
    text stops too early to know (only when not ``final``). Lookahead is read only when a
    rule needs it, so most sentences are released as soon as the whitespace after them
    arrives.
    """
    run = text[run_start:run_end]
    if any(c in _STRONG for c in run):
        return True
    n = len(text)
    k = ws
    while k < n and text[k].isspace():
        k += 1
    while k < n and text[k] in _OPENERS:
        k += 1
    if len(run) > 1 or run == "…":
        if k >= n:
            return True if final else None
        return text[k].isupper()
    word = _word_before(text, sent_start, run_start)
    lw = word.lower()
    if lw in _NEVER_END:
        return False
    if lw == "no":
        if k >= n:
            return True if final else None
        return not text[k].isdigit()
    if lw in _MAY_END or _ACRONYM.fullmatch(word):
        e = k
        while e < n and text[e].isalpha():
            e += 1
        if e >= n and not final:
            return None  # the next word may still grow ("The" vs "Theory")
        return text[k:e] in _STARTERS
    return True


_OTHER_SPACE = re.compile(r"[^\S ]")


def _normalize(raw: str) -> str:
    return _OTHER_SPACE.sub(" ", raw).strip()


def split_sentence_spans(
    text: str, final: bool, scan_from: int = 0, *, retain_format: bool = False
) -> tuple[list[Span], int, int]:
    """Splitter (see ``token_stream``) for sentences: unmerged spans (see module docstring).

    Args:
        text: the text seen so far.
        final: no more text will come.
        scan_from: where deciding stopped on the previous call.
        retain_format: keep the original slices (and end sentences at line breaks).
    """
    n = len(text)
    out: list[Span] = []
    sent_start = 0
    i = scan_from

    def emit(end: int) -> None:
        nonlocal sent_start
        raw = text[sent_start:end]
        sentence = raw if retain_format else _normalize(raw)
        if sentence:
            out.append((sentence, sent_start, end))
        sent_start = end

    while True:
        m = _TERM_RUN.search(text, i)
        if retain_format:
            nl = text.find("\n", i)
            if nl >= 0 and (m is None or nl < m.start()):
                emit(nl + 1)  # a line break ends the line's sentence, with the break
                i = nl + 1
                continue
        if m is None:
            i = n
            break
        run_start, run_end = m.span()
        j = run_end
        while j < n and text[j] in _CLOSERS:
            j += 1
        if j >= n:
            # the run (or its closers) may continue in text not seen yet
            i = run_start
            break
        if any(c in _NO_SPACE for c in text[run_start:run_end]):
            decision: bool | None = True
        elif not text[j].isspace():
            i = j
            continue
        else:
            decision = _is_boundary(text, sent_start, run_start, run_end, j, final)
        if decision is None:
            i = run_start
            break
        if decision:
            emit(j)
        i = j
    if final:
        if text[sent_start:].strip():
            emit(n)
        return out, n, n
    return out, sent_start, max(i, sent_start)


def sentence_splitter(retain_format: bool = False) -> Callable[[str, bool, int], Any]:
    """A ``Splitter`` for sentences (``retain_format``: see the module docstring)."""

    def split(text: str, final: bool, scan_from: int) -> tuple[list[Span], int, int]:
        return split_sentence_spans(text, final, scan_from, retain_format=retain_format)

    return split
