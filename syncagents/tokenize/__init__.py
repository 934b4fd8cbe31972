"""Text tokenizers for TTS: sentence and word splitting, batch and streaming.

``basic.SentenceTokenizer`` / ``basic.WordTokenizer`` are the built-in rule-based ones (with
``basic.split_sentences``, ``split_words``, ``split_paragraphs`` and ``hyphenate_word``);
``utils.replace_words`` rewrites words for TTS; ``SentenceTokenizer`` / ``WordTokenizer``
here are the interfaces plugins implement.
"""

from __future__ import annotations

from . import basic, utils
from .token_stream import BufferedSentenceStream, BufferedTokenStream, BufferedWordStream
from .tokenizer import (
    SentenceStream,
    SentenceTokenizer,
    TokenData,
    TokenStream,
    WordStream,
    WordTokenizer,
)

__all__ = [
    "BufferedSentenceStream",
    "BufferedTokenStream",
    "BufferedWordStream",
    "SentenceStream",
    "SentenceTokenizer",
    "TokenData",
    "TokenStream",
    "WordStream",
    "WordTokenizer",
    "basic",
    "utils",
]
