"""Tokenizer interfaces: what a sentence or word tokenizer and its streams look like.

Sentence tokenizers feed TTS: an LLM's text arrives in small deltas, and speech can start
as soon as the first complete sentence is known.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from types import TracebackType

__all__ = [
    "SentenceStream",
    "SentenceTokenizer",
    "TokenData",
    "TokenStream",
    "WordStream",
    "WordTokenizer",
]


@dataclass
class TokenData:
    """One token (a sentence or a word) and the segment it belongs to.

    A segment is the text between two ``flush()`` calls; TTS uses the id to group the
    audio of one reply.
    """

    token: str = ""
    segment_id: str = ""


class TokenStream(ABC):
    """Text goes in with ``push_text``; complete tokens come out by iterating.

    ``push_text`` never blocks. Iterating blocks the calling greenlet until a token is ready
    and ends once ``end_input()`` was called and every token is out (or at ``close()``).
    """

    @abstractmethod
    def push_text(self, text: str) -> None:
        """Add ``text`` (any chunk, e.g. an LLM delta); never blocks.

        Tokens that no later text could change become available to iteration at once.
        """

    @abstractmethod
    def flush(self) -> None:
        """Emit what is buffered as the end of the current segment and start a new one."""

    @abstractmethod
    def end_input(self) -> None:
        """No more text: emit the rest; iteration ends after it."""

    @abstractmethod
    def close(self) -> None:
        """Stop now: pending tokens are dropped and iteration ends."""

    @abstractmethod
    def get(self, timeout: float | None = None) -> TokenData | None:
        """The next token, ``None`` once the stream has ended; ``TimeoutError`` on timeout."""

    def __iter__(self) -> Iterator[TokenData]:
        return self

    def __next__(self) -> TokenData:
        item = self.get()
        if item is None:
            raise StopIteration
        return item

    def __enter__(self) -> TokenStream:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class SentenceStream(TokenStream):
    """A stream whose tokens are sentences."""


class WordStream(TokenStream):
    """A stream whose tokens are words."""


class SentenceTokenizer(ABC):
    """Splits text into sentences, all at once (``tokenize``) or as it arrives (``stream``)."""

    @abstractmethod
    def tokenize(self, text: str, language: str | None = None) -> list[str]:
        """The sentences of ``text``."""

    @abstractmethod
    def stream(self, language: str | None = None) -> SentenceStream:
        """A new ``SentenceStream``: push text in, iterate sentences out."""


class WordTokenizer(ABC):
    """Splits text into words, all at once (``tokenize``) or as it arrives (``stream``)."""

    @abstractmethod
    def tokenize(self, text: str, language: str | None = None) -> list[str]:
        """The words of ``text``."""

    @abstractmethod
    def stream(self, language: str | None = None) -> WordStream:
        """A new ``WordStream``: push text in, iterate words out."""
