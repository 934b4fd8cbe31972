"""``StreamAdapter``: streaming synthesis from a batch TTS and a sentence tokenizer.

Text pushed in small pieces (an LLM's deltas) goes through a sentence tokenizer stream; each
complete sentence is synthesized with the batch TTS as soon as it is known, while later text
keeps arriving, sentences strictly in order. The first frame of each sentence carries the
sentence as ``delta_text``. ``flush()`` ends a segment (the tokenizer emits what it holds, the
next text gets a new ``segment_id``).

Metrics: one ``TTSMetrics`` per segment (``streamed=True``). The wrapped TTS's generator is
run directly (not through its ``synthesize()``), so its audio is conformed once, by the
adapter's stream, and the wrapped TTS emits no metrics of its own for these sentences.

It is written as an ordinary streaming plugin (``_stream``), so it also shows how to write one.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from gevent.pool import Group

from .. import tokenize
from .tts import TTS, SynthesizedAudio, TTSCapabilities

__all__ = ["StreamAdapter"]


class StreamAdapter(TTS):
    """A streaming TTS built from a batch ``tts`` and a ``sentence_tokenizer``.

    Pushed text goes through the tokenizer (``tokenize.basic.SentenceTokenizer()`` by default); each
    complete sentence is synthesized by ``tts`` as soon as it is known, in order, its first frame
    carrying the sentence as ``delta_text``. ``flush()`` ends a segment.
    """

    def __init__(
        self, *, tts: TTS, sentence_tokenizer: tokenize.SentenceTokenizer | None = None
    ) -> None:
        super().__init__(
            sample_rate=tts.sample_rate,
            num_channels=tts.num_channels,
            capabilities=TTSCapabilities(streaming=True),
        )
        self._tts = tts
        self._tokenizer = sentence_tokenizer or tokenize.basic.SentenceTokenizer()

    @property
    def wrapped_tts(self) -> TTS:
        """The batch TTS that synthesizes each sentence."""
        return self._tts

    @property
    def label(self) -> str:
        """The wrapped TTS's label with `` (StreamAdapter)`` appended."""
        return f"{self._tts.label} (StreamAdapter)"

    def _synthesize(self, text: str) -> Iterator[Any]:
        # the wrapped plugin's generator itself, not its synthesize(): this stream conforms
        # the audio (rate, channels) once, and no second greenlet and queue sit in between
        return self._tts._synthesize(text)

    def _stream(self, text: Iterator[str]) -> Iterator[Any]:
        sentences = self._tokenizer.stream()
        errors: list[Exception] = []

        def feed() -> None:
            # reads the caller's text while sentences already synthesize
            try:
                for chunk in text:
                    sentences.push_text(chunk)
            except Exception as exc:
                errors.append(exc)
            try:
                sentences.end_input()
            except RuntimeError:  # the stream was closed meanwhile
                pass

        group = Group()
        group.spawn(feed)
        try:
            for token in sentences:
                yield from _sentence(self._tts._synthesize(token.token), token.token)
            if errors:
                raise errors[0]
        finally:
            group.kill(block=True, timeout=5)
            sentences.close()


def _sentence(produced: Iterator[Any], text: str) -> Iterator[Any]:
    """A batch plugin's output for one sentence, its first frame carrying ``text``.

    The plugin's generator runs right here, in the stream's producer greenlet (not behind
    its own ``synthesize()`` greenlet and queue), and its frames are conformed once, by this
    stream. It is closed here, so its ``finally`` runs even when the stream is closed.
    """
    delta = text
    try:
        for item in produced:
            frame = item.frame if isinstance(item, SynthesizedAudio) else item
            if delta:
                yield SynthesizedAudio(frame=frame, delta_text=delta)
                delta = ""
            else:
                yield frame
    finally:
        close = getattr(produced, "close", None)
        if close is not None:
            close()
