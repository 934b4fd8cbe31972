"""Rule-based tokenizers (English-oriented), streaming output identical to batch output.

Also the helpers livekit-agents' ``tokenize.basic`` has: ``split_sentences`` and
``split_words`` with character offsets, ``split_paragraphs`` / ``tokenize_paragraphs`` and
``hyphenate_word``.
"""

from __future__ import annotations

from .hyphenate import hyphenate_word
from .paragraphs import split_paragraphs
from .sentences import sentence_splitter
from .token_stream import (
    BufferedSentenceStream,
    BufferedWordStream,
    Span,
    Splitter,
    merge_spans,
    tokenize_all,
)
from .tokenizer import SentenceStream, WordStream
from .tokenizer import SentenceTokenizer as _SentenceTokenizerBase
from .tokenizer import WordTokenizer as _WordTokenizerBase
from .words import word_splitter

__all__ = [
    "SentenceTokenizer",
    "WordTokenizer",
    "hyphenate_word",
    "split_paragraphs",
    "split_sentences",
    "split_words",
    "tokenize_paragraphs",
]


class SentenceTokenizer(_SentenceTokenizerBase):
    """Splits text into sentences; sentences shorter than ``min_sentence_len`` characters are
    joined with the following ones (so TTS does not synthesize "Hi!" on its own).

    A stream emits a sentence once it is sure the sentence is complete: the last candidate
    stays buffered until more text, ``flush()`` or ``end_input()`` settles it.

    Args:
        min_sentence_len: shorter sentences merge with the next.
        language: accepted for interface compatibility; the rules are English ones, plus
            the sentence marks of other scripts (see ``sentences``).
        stream_context_len: accepted for livekit-agents compatibility only: streams here
            release a sentence exactly when it is certain, so no look-ahead is needed.
        retain_format: sentences are the original slices of the text, whitespace and line
            breaks included (a line break also ends a sentence); merged ones are joined
            without adding spaces, so the sentences joined give back the text.
    """

    def __init__(
        self,
        min_sentence_len: int = 20,
        *,
        language: str = "english",
        stream_context_len: int | None = None,
        retain_format: bool = False,
    ) -> None:
        del stream_context_len
        self.min_sentence_len = min_sentence_len
        self.language = language
        self.retain_format = retain_format

    def tokenize(self, text: str, language: str | None = None) -> list[str]:
        """The sentences of ``text``."""
        return tokenize_all(
            sentence_splitter(self.retain_format), text, self.min_sentence_len,
            retain_format=self.retain_format,
        )

    def stream(self, language: str | None = None) -> SentenceStream:
        """A stream whose sentences equal ``tokenize`` of everything pushed."""
        return BufferedSentenceStream(
            splitter=sentence_splitter(self.retain_format),
            min_token_len=self.min_sentence_len,
            retain_format=self.retain_format,
        )


class WordTokenizer(_WordTokenizerBase):
    """Splits on whitespace.

    Args:
        ignore_punctuation: drop leading/trailing punctuation (words made only of punctuation
            disappear); inner punctuation stays ("don't", "3.14").
        split_character: each character of scripts written without spaces (CJK, kana,
            Thai) is a word of its own.
        retain_format: each word keeps the whitespace before it (``format_words`` then
            joins them with nothing).
    """

    def __init__(
        self,
        ignore_punctuation: bool = True,
        *,
        split_character: bool = False,
        retain_format: bool = False,
    ) -> None:
        self.ignore_punctuation = ignore_punctuation
        self.split_character = split_character
        self.retain_format = retain_format

    def _splitter(self) -> Splitter:
        return word_splitter(
            ignore_punctuation=self.ignore_punctuation,
            split_character=self.split_character,
            retain_format=self.retain_format,
        )

    def tokenize(self, text: str, language: str | None = None) -> list[str]:
        """The words of ``text``."""
        return tokenize_all(self._splitter(), text, 0)

    def stream(self, language: str | None = None) -> WordStream:
        """A stream whose words equal ``tokenize`` of everything pushed."""
        return BufferedWordStream(splitter=self._splitter(), min_token_len=0)

    def format_words(self, words: list[str]) -> str:
        """Join words back into text."""
        return "".join(words) if self.retain_format else " ".join(words)


def split_sentences(
    text: str, min_sentence_len: int = 20, retain_format: bool = False
) -> list[Span]:
    """Sentences of ``text`` with their character offsets.

    Args:
        text: the text.
        min_sentence_len: shorter sentences merge with the next (as ``SentenceTokenizer``).
        retain_format: see ``SentenceTokenizer``.

    Returns:
        ``(sentence, start, end)``: the spans are contiguous and cover the text (the first
        starts at 0, the last ends at ``len(text)``; whitespace between two sentences belongs
        to the second). ``text[start:end]`` is the sentence as written: with
        ``retain_format`` exactly, else up to whitespace (sentences are stripped, line breaks
        become spaces and merged sentences are joined by one space).
    """
    return merge_spans(
        sentence_splitter(retain_format), text, min_sentence_len, retain_format=retain_format
    )


def split_words(
    text: str, *, ignore_punctuation: bool = True, split_character: bool = False
) -> list[Span]:
    """Words of ``text`` with their character offsets.

    Args:
        text: the text.
        ignore_punctuation: see ``WordTokenizer``.
        split_character: see ``WordTokenizer``.

    Returns:
        ``(word, start, end)``: ``text[start:end]`` is the word as written (with the
        punctuation that ``ignore_punctuation`` removed from ``word``).
    """
    split = word_splitter(ignore_punctuation=ignore_punctuation, split_character=split_character)
    tokens, _, _ = split(text, True, 0)
    return list(tokens)


def tokenize_paragraphs(text: str) -> list[str]:
    """The paragraphs of ``text`` (split at blank lines, stripped)."""
    return [p for p, _, _ in split_paragraphs(text)]
