"""A token stream built on an incremental splitter, so streaming equals batch tokenizing.

A splitter is called as ``split(text, final, scan_from)`` and returns
``(tokens, consumed, scan_from)``, each token a ``(text, start, end)`` span of the input:

- with ``final=False`` it returns only the tokens it is *sure* of — those that no text
  appended later could change — and ``consumed``, the offset where the undecided rest starts;
- with ``final=True`` the text is complete: every token, ``consumed == len(text)``;
- ``scan_from`` lets it resume where it stopped deciding (offsets before it were already
  judged with full information), so a long undecided tail is not rescanned from the start.

If a splitter honours that contract, the tokens a stream emits for text pushed in any
chunking are exactly the batch tokens of the whole text, because the stream only ever
splits at points the batch run splits at too. Short tokens are then merged greedily left to
right (``min_token_len``) by the same code in both modes: joined by a space, or with
``retain_format`` by nothing (the tokens are then original slices, whitespace included, and
a whitespace-only token is folded into the next one rather than sent alone).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import gevent.queue

from .tokenizer import SentenceStream, TokenData, TokenStream, WordStream

__all__ = [
    "BufferedSentenceStream",
    "BufferedTokenStream",
    "BufferedWordStream",
    "Span",
    "Splitter",
    "TokenMerger",
    "merge_spans",
    "new_segment_id",
    "tokenize_all",
]

Span = tuple[str, int, int]
Splitter = Callable[[str, bool, int], "tuple[list[Span], int, int]"]


def new_segment_id() -> str:
    """A fresh segment id: ``SEG_`` and 12 random hex digits."""
    return "SEG_" + uuid.uuid4().hex[:12]


class TokenMerger:
    """Joins consecutive tokens shorter than ``min_len`` with the next ones (livekit-agents'
    rule: a sentence of fewer than ``min_len`` characters is merged with what follows).

    Args:
        min_len: the shortest token sent on its own.
        joiner: put between merged tokens (" "; "" for original slices).
        fold_blank: hold whitespace-only tokens for the next token; dropped at the end.
    """

    def __init__(self, min_len: int, joiner: str = " ", *, fold_blank: bool = False) -> None:
        self._min_len = min_len
        self._joiner = joiner
        self._fold_blank = fold_blank
        self._parts: list[str] = []
        self._len = 0
        self._start = 0
        self._end = 0

    def add(self, token: str, start: int = 0, end: int = 0) -> Span | None:
        """Add a token (with its span); returns a merged token once it is long enough."""
        if not self._parts:
            self._start = start
        elif self._joiner:
            self._len += len(self._joiner)
        self._parts.append(token)
        self._len += len(token)
        self._end = end
        if self._fold_blank and not token.strip():
            return None
        if self._len >= self._min_len:
            return self.take()
        return None

    def take(self) -> Span | None:
        """Whatever is held back, even if still short (end of segment); whitespace held by
        ``fold_blank`` alone is dropped."""
        if not self._parts:
            return None
        out = self._joiner.join(self._parts)
        self._parts = []
        self._len = 0
        if self._fold_blank and not out.strip():
            return None
        return out, self._start, self._end


def merge_spans(
    split: Splitter, text: str, min_token_len: int, *, retain_format: bool = False
) -> list[Span]:
    """The batch form of a stream, with spans: one final split and the same merge. The last
    span is extended to the end of the text (trailing whitespace belongs to it)."""
    tokens, _, _ = split(text, True, 0)
    merger = TokenMerger(min_token_len, "" if retain_format else " ", fold_blank=retain_format)
    out = [m for m in (merger.add(*t) for t in tokens) if m is not None]
    rest = merger.take()
    if rest is not None:
        out.append(rest)
    if out:
        token, start, _ = out[-1]
        out[-1] = (token, start, len(text))
    return out


def tokenize_all(
    split: Splitter, text: str, min_token_len: int, *, retain_format: bool = False
) -> list[str]:
    """The batch form of a stream: one final split and the same merge."""
    return [t for t, _, _ in merge_spans(split, text, min_token_len, retain_format=retain_format)]


class _End:
    """Queue sentinel: the stream has no more tokens."""


_END = _End()


class BufferedTokenStream(TokenStream):
    """A stream over a ``Splitter``; its tokens equal ``tokenize_all`` of the whole text.

    Args:
        splitter: see the module docstring.
        min_token_len: shorter tokens are merged with the following ones.
        retain_format: the splitter gives original slices: merge them without a joiner and
            fold whitespace-only ones into the next.
    """

    def __init__(
        self, *, splitter: Splitter, min_token_len: int, retain_format: bool = False
    ) -> None:
        self._split = splitter
        self._merger = TokenMerger(
            min_token_len, "" if retain_format else " ", fold_blank=retain_format
        )
        # unbounded on purpose: push_text must never block, and a consumer that stops reading
        # holds at most the text it was given
        self._queue: Any = gevent.queue.Queue()
        self._buf = ""
        self._scan_from = 0
        self._segment_id = new_segment_id()
        self._input_ended = False
        self._closed = False
        self._done = False

    def push_text(self, text: str) -> None:
        """Add ``text``; never blocks.

        Tokens the splitter is sure of (and long enough, after merging) are queued for iteration.
        Raises ``RuntimeError`` after ``end_input()`` or ``close()``.
        """
        self._check_input_open()
        if not text:
            return
        self._buf += text
        tokens, consumed, scan_from = self._split(self._buf, False, self._scan_from)
        if consumed:
            self._buf = self._buf[consumed:]
        self._scan_from = max(scan_from - consumed, 0)
        for token in tokens:
            merged = self._merger.add(*token)
            if merged is not None:
                self._emit(merged[0])

    def flush(self) -> None:
        self._check_input_open()
        self._finish_segment()

    def end_input(self) -> None:
        self._check_input_open()
        self._finish_segment()
        self._input_ended = True
        self._queue.put(_END)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._input_ended = True
        self._queue.put(_END)  # wakes a greenlet blocked in get()

    def get(self, timeout: float | None = None) -> TokenData | None:
        if self._done or self._closed:
            return None
        try:
            item = self._queue.get(timeout=timeout)
        except gevent.queue.Empty:
            raise TimeoutError(f"no token within {timeout} s") from None
        if isinstance(item, _End) or self._closed:
            self._done = True
            return None
        return item  # type: ignore[no-any-return]

    @property
    def closed(self) -> bool:
        """Whether ``close()`` was called."""
        return self._closed

    def _finish_segment(self) -> None:
        tokens, _, _ = self._split(self._buf, True, self._scan_from)
        for token in tokens:
            merged = self._merger.add(*token)
            if merged is not None:
                self._emit(merged[0])
        rest = self._merger.take()
        if rest is not None:
            self._emit(rest[0])
        self._buf = ""
        self._scan_from = 0
        self._segment_id = new_segment_id()

    def _emit(self, token: str) -> None:
        self._queue.put(TokenData(token=token, segment_id=self._segment_id))

    def _check_input_open(self) -> None:
        if self._input_ended:
            name = type(self).__name__
            raise RuntimeError(f"{name}: input already ended or stream closed")


class BufferedSentenceStream(BufferedTokenStream, SentenceStream):
    """A ``BufferedTokenStream`` of sentences (a sentence splitter's stream)."""


class BufferedWordStream(BufferedTokenStream, WordStream):
    """A ``BufferedTokenStream`` of words (a word splitter's stream)."""
