"""A token stream built on an incremental splitter, so streaming equals batch tokenizing.

A splitter is called as ``split(text, final, scan_from)`` and returns
``(tokens, consumed, scan_from)``:

- with ``final=False`` it returns only the tokens it is *sure* of — those that no text
  appended later could change — and ``consumed``, the offset where the undecided rest starts;
- with ``final=True`` the text is complete: every token, ``consumed == len(text)``;
- ``scan_from`` lets it resume where it stopped deciding (offsets before it were already
  judged with full information), so a long undecided tail is not rescanned from the start.

If a splitter honours that contract, the tokens a stream emits for text pushed in any
chunking are exactly the batch tokens of the whole text, because the stream only ever
splits at points the batch run splits at too. Short tokens are then merged greedily left to
right (``min_token_len``) by the same code in both modes.
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
    "Splitter",
    "TokenMerger",
    "new_segment_id",
    "tokenize_all",
]

Splitter = Callable[[str, bool, int], "tuple[list[str], int, int]"]


def new_segment_id() -> str:
    return "SEG_" + uuid.uuid4().hex[:12]


class TokenMerger:
    """Joins consecutive tokens shorter than ``min_len`` with the next ones (livekit-agents'
    rule: a sentence of fewer than ``min_len`` characters is merged with what follows)."""

    def __init__(self, min_len: int, joiner: str = " ") -> None:
        self._min_len = min_len
        self._joiner = joiner
        self._parts: list[str] = []
        self._len = 0

    def add(self, token: str) -> str | None:
        if self._parts:
            self._len += len(self._joiner)
        self._parts.append(token)
        self._len += len(token)
        if self._len >= self._min_len:
            return self.take()
        return None

    def take(self) -> str | None:
        """Whatever is held back, even if still short (end of segment)."""
        if not self._parts:
            return None
        out = self._joiner.join(self._parts)
        self._parts = []
        self._len = 0
        return out


def tokenize_all(split: Splitter, text: str, min_token_len: int) -> list[str]:
    """The batch form of a stream: one final split and the same merge."""
    tokens, _, _ = split(text, True, 0)
    merger = TokenMerger(min_token_len)
    out = [m for m in (merger.add(t) for t in tokens) if m is not None]
    rest = merger.take()
    if rest is not None:
        out.append(rest)
    return out


class _End:
    """Queue sentinel: the stream has no more tokens."""


_END = _End()


class BufferedTokenStream(TokenStream):
    def __init__(self, *, splitter: Splitter, min_token_len: int) -> None:
        self._split = splitter
        self._merger = TokenMerger(min_token_len)
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
        self._check_input_open()
        if not text:
            return
        self._buf += text
        tokens, consumed, scan_from = self._split(self._buf, False, self._scan_from)
        if consumed:
            self._buf = self._buf[consumed:]
        self._scan_from = max(scan_from - consumed, 0)
        for token in tokens:
            merged = self._merger.add(token)
            if merged is not None:
                self._emit(merged)

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
        return self._closed

    def _finish_segment(self) -> None:
        tokens, _, _ = self._split(self._buf, True, self._scan_from)
        for token in tokens:
            merged = self._merger.add(token)
            if merged is not None:
                self._emit(merged)
        rest = self._merger.take()
        if rest is not None:
            self._emit(rest)
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
    pass


class BufferedWordStream(BufferedTokenStream, WordStream):
    pass
