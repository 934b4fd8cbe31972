"""Rule-based tokenizers (English-oriented), streaming output identical to batch output."""

from __future__ import annotations

from .sentences import split_sentences
from .token_stream import (
    BufferedSentenceStream,
    BufferedWordStream,
    Splitter,
    tokenize_all,
)
from .tokenizer import SentenceStream, WordStream
from .tokenizer import SentenceTokenizer as _SentenceTokenizerBase
from .tokenizer import WordTokenizer as _WordTokenizerBase
from .words import split_words

__all__ = ["SentenceTokenizer", "WordTokenizer"]


class SentenceTokenizer(_SentenceTokenizerBase):
    """Splits text into sentences; sentences shorter than ``min_sentence_len`` characters are
    joined with the following ones (so TTS does not synthesize "Hi!" on its own).

    ``language`` is accepted for interface compatibility; the rules are English ones.
    A stream emits a sentence once it is sure the sentence is complete: the last candidate
    stays buffered until more text, ``flush()`` or ``end_input()`` settles it.
    """

    def __init__(
        self,
        min_sentence_len: int = 20,
        *,
        language: str = "english",
        stream_context_len: int | None = None,
    ) -> None:
        # stream_context_len is accepted for livekit-agents compatibility only: streams here
        # release a sentence exactly when it is certain, so no look-ahead length is needed
        del stream_context_len
        self.min_sentence_len = min_sentence_len
        self.language = language

    def tokenize(self, text: str, language: str | None = None) -> list[str]:
        return tokenize_all(split_sentences, text, self.min_sentence_len)

    def stream(self, language: str | None = None) -> SentenceStream:
        return BufferedSentenceStream(
            splitter=split_sentences, min_token_len=self.min_sentence_len
        )


class WordTokenizer(_WordTokenizerBase):
    """Splits on whitespace; with ``ignore_punctuation`` leading/trailing punctuation is
    dropped (words made only of punctuation disappear), inner punctuation kept ("don't")."""

    def __init__(self, ignore_punctuation: bool = True) -> None:
        self.ignore_punctuation = ignore_punctuation

    def _splitter(self) -> Splitter:
        ignore = self.ignore_punctuation

        def split(text: str, final: bool, scan_from: int) -> tuple[list[str], int, int]:
            return split_words(text, final, scan_from, ignore_punctuation=ignore)

        return split

    def tokenize(self, text: str, language: str | None = None) -> list[str]:
        return tokenize_all(self._splitter(), text, 0)

    def stream(self, language: str | None = None) -> WordStream:
        return BufferedWordStream(splitter=self._splitter(), min_token_len=0)
