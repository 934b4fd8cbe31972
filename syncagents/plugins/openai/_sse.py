"""Server-sent events (text/event-stream) parsing, per the WHATWG HTML specification.

Network chunks do not respect event boundaries: a chunk may end in the middle of a line, of
a UTF-8 sequence, or between the ``\\r`` and ``\\n`` of a line ending. The parser keeps the
partial line and decodes incrementally.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

__all__ = ["SSEEvent", "SSEParser", "iter_sse"]

_EOL = re.compile(r"\r\n|\r|\n")


@dataclass
class SSEEvent:
    data: str
    event: str = "message"
    id: str | None = None
    retry: int | None = None


class SSEParser:
    """Feed bytes with :meth:`feed`; it returns the events completed by them."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._buffer = ""
        self._pending_cr = False  # the last chunk ended with "\r": a following "\n" is its pair
        self._first = True
        self._data: list[str] = []
        self._event = ""
        self._id: str | None = None
        self._retry: int | None = None

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        text = self._decoder.decode(chunk)
        if self._first and text:
            self._first = False
            text = text.removeprefix("\ufeff")  # a leading BOM is ignored
        if not text:
            return []  # only part of a UTF-8 sequence so far
        if self._pending_cr and text.startswith("\n"):
            text = text[1:]
        self._pending_cr = False
        buffer = self._buffer + text
        events: list[SSEEvent] = []
        pos = 0
        # only CRLF, CR and LF end lines (str.splitlines would also split on U+2028 & co,
        # which JSON strings may contain raw)
        for match in _EOL.finditer(buffer):
            line = buffer[pos : match.start()]
            pos = match.end()
            if match.group() == "\r" and pos == len(buffer):
                self._pending_cr = True  # maybe the first half of a CRLF split across chunks
            event = self._line(line)
            if event is not None:
                events.append(event)
        self._buffer = buffer[pos:]
        return events

    def close(self) -> list[SSEEvent]:
        """End of stream: a trailing event without its blank line is discarded (per spec)."""
        self._decoder.decode(b"", final=True)
        return []

    def _line(self, line: str) -> SSEEvent | None:
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None  # comment (servers use these as keep-alives)
        field, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if field == "data":
            self._data.append(value)
        elif field == "event":
            self._event = value
        elif field == "id":
            if "\0" not in value:
                self._id = value
        elif field == "retry" and value.isdigit():
            self._retry = int(value)
        return None

    def _dispatch(self) -> SSEEvent | None:
        if not self._data:
            self._event = ""
            return None
        event = SSEEvent(
            data="\n".join(self._data), event=self._event or "message", id=self._id,
            retry=self._retry,
        )
        self._data = []
        self._event = ""
        return event


def iter_sse(chunks: Iterable[bytes]) -> Iterator[SSEEvent]:
    """Events from an iterable of byte chunks (e.g. ``response.iter_content(None)``)."""
    parser = SSEParser()
    for chunk in chunks:
        if chunk:
            yield from parser.feed(chunk)
    yield from parser.close()
