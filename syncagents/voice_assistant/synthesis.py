"""``SpeechSynthesis``: the text of one speech read from its source and fed to a TTS stream.

The source (a string, or an iterator of strings such as an LLM reply) is read in a greenlet
owned by the assistant, so synthesis runs ahead of playout — also before a reply is allowed
to play (preemptive synthesis). The text read so far is recorded as it passes: that is the
speech's own text, used for transcriptions and the chat context, while ``before_tts_cb`` may
hand the TTS a different wording.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any, Union

import gevent
import gevent.event
from loguru import logger

from .. import llm as llm_mod
from .. import tts as tts_mod
from .played_text import count_words

__all__ = ["SpeechSynthesis", "TextSource", "llm_text"]

TextSource = Union[str, Iterable[str]]
BeforeTTS = Callable[[TextSource], Any]
Spawner = Callable[..., gevent.Greenlet]


def llm_text(stream: llm_mod.LLMStream) -> Iterator[str]:
    """The text of an LLM stream's chunks, as ``say(llm_stream)`` speaks it; the stream is
    closed at the end. Tool calls in it are not run (a reply runs its tools, a ``say()``
    only speaks): they are logged and dropped, as livekit-agents does."""
    try:
        for chunk in stream:
            for choice in chunk.choices:
                if choice.delta.content:
                    yield choice.delta.content
    finally:
        stream.close()
    if stream.function_calls:
        logger.warning(
            "say(): the LLM stream asked for tools ({}); a say() does not run them",
            ", ".join(call.name for call in stream.function_calls),
        )


class SpeechSynthesis:
    """One speech's text, read from its source in a greenlet and fed to a TTS stream."""

    def __init__(
        self,
        tts: tts_mod.TTS,
        source: TextSource | llm_mod.LLMStream,
        *,
        spawn: Spawner,
        before_tts: BeforeTTS | None = None,
    ) -> None:
        self.stream = tts.stream()
        self._parts: list[str] = []
        self.text_done = gevent.event.Event()
        """Set once the source is exhausted (or failed): ``text`` is then complete."""
        self.tts_words = 0
        """Words handed to the TTS (after ``before_tts``)."""
        self.error: BaseException | None = None
        self._closed = False
        self._feeder = spawn(self._feed, source, before_tts)

    @property
    def text(self) -> str:
        """The text read from the source so far (as the source gave it, before ``before_tts``)."""
        return "".join(self._parts)

    @property
    def request_id(self) -> str:
        """The TTS stream's request id."""
        return self.stream.request_id

    def _record(self, source: TextSource | llm_mod.LLMStream) -> TextSource:
        if isinstance(source, str):
            self._parts.append(source)
            return source
        chunks = llm_text(source) if isinstance(source, llm_mod.LLMStream) else source

        def recording() -> Iterator[str]:
            for chunk in chunks:
                if not isinstance(chunk, str):
                    # caught by _feed: this speech ends with what it said so far
                    raise TypeError(
                        "a speech's text source must yield str, got "
                        f"{type(chunk).__name__}"
                    )
                if chunk:
                    self._parts.append(chunk)
                    yield chunk

        return recording()

    def _push(self, text: str) -> None:
        if not text:
            return
        self.tts_words += count_words(text)
        self.stream.push_text(text)

    def _feed(self, source: TextSource | llm_mod.LLMStream, before_tts: BeforeTTS | None) -> None:
        try:
            text = self._record(source)
            if before_tts is not None:
                text = before_tts(text)
            if isinstance(text, str):
                self._push(text)
            elif text is not None:
                for chunk in text:
                    self._push(chunk)
        except Exception as exc:
            # the speech plays what it has: an LLM failure must not take the assistant down
            self.error = exc
            logger.opt(exception=True).error("speech text source failed: {}", exc)
        finally:
            self.text_done.set()
            if not self._closed:
                try:
                    self.stream.end_input()
                except RuntimeError:  # closed meanwhile
                    pass

    def flush(self) -> None:
        """End the TTS segment: text it holds back (waiting for more) is spoken now."""
        try:
            self.stream.flush()
        except RuntimeError:  # input already ended or closed
            pass

    def close(self) -> None:
        """Stop reading the source (an LLM request is closed with it) and synthesizing."""
        if self._closed:
            return
        self._closed = True
        if self._feeder is not gevent.getcurrent():
            self._feeder.kill(block=True, timeout=5)
        self.stream.close()
        self.text_done.set()
