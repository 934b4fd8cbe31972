"""Text and byte streams in blocking style.

Outgoing: ``local_participant.stream_text()`` / ``stream_bytes()`` return a writer whose
``write`` and ``close`` block the calling greenlet (also a context manager: leaving the block
with an exception closes the stream with that error as its reason, so the reader sees it fail).

Incoming: ``room.register_text_stream_handler(topic, handler)`` /
``register_byte_stream_handler``: livekit calls its handler on the asyncio thread; here each
stream is handed to ``handler(reader, participant_identity)`` in its own greenlet (spawned like
room event handlers, so it belongs to the job), and the reader is a plain blocking iterator of
chunks (``str`` or ``bytes``) with ``read_all()`` and ``info``.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import gevent
from loguru import logger

from .. import _bridge
from ._blocking import lk

TextStreamInfo = lk.TextStreamInfo
ByteStreamInfo = lk.ByteStreamInfo
StreamError = lk.StreamError

# Chunks (up to ~15 kB each) buffered between the loop and the reading greenlet before the
# pump stops reading from livekit.
_BUFFER_CHUNKS = 64

Spawn = Callable[..., gevent.Greenlet]


# -- readers ------------------------------------------------------------------------------------


def _closer(lk_reader: Any) -> Callable[[], Awaitable[None]]:
    # Closes over the livekit reader only, not the facade: a facade nobody holds any more must
    # be collectable (its __del__ stops the pump), which a bound method would prevent.
    async def close() -> None:
        lk_reader.close()

    return close


class _Reader:
    _join: Callable[[list[Any]], Any]

    def __init__(self, lk_reader: Any) -> None:
        self._lk = lk_reader
        self._it: _bridge.BlockingIterator[Any] = _bridge.BlockingIterator(
            lambda: lk_reader, maxsize=_BUFFER_CHUNKS, on_close=_closer(lk_reader)
        )

    @property
    def info(self) -> Any:
        """The stream's ``TextStreamInfo`` / ``ByteStreamInfo`` (``topic``, ``attributes``,
        ``stream_id``, ...); attributes sent with the end of the stream are added on arrival."""
        return self._lk.info

    def __iter__(self) -> _Reader:
        return self

    def __next__(self) -> Any:
        return self._it.next()

    def next(self, timeout: float | None = None) -> Any:
        """The next chunk; ``TimeoutError`` after ``timeout`` s without one; ``StopIteration``
        at the end; ``rtc.StreamError`` if the sender aborted or the room disconnected."""
        return self._it.next(timeout=timeout)

    def read_all(self, timeout: float | None = None) -> Any:
        """Every chunk left, joined; ``TimeoutError`` when the whole stream took longer than
        ``timeout`` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        chunks: list[Any] = []
        while True:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                chunks.append(self._it.next(timeout=left))
            except StopIteration:
                return self._join(chunks)

    def close(self) -> None:
        """Stop reading (any greenlet): a loop waiting on the reader ends; unread chunks go."""
        self._it.close()

    def __enter__(self) -> _Reader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        it = self.__dict__.get("_it")
        if it is not None:
            it.close()


class TextStreamReader(_Reader):
    """An incoming text stream: iterate it for ``str`` chunks, or ``read_all()``."""

    _join = "".join

    def __next__(self) -> str:
        return str(self._it.next())

    def read_all(self, timeout: float | None = None) -> str:
        """The rest of the text (see :meth:`_Reader.read_all`)."""
        return str(super().read_all(timeout))


class ByteStreamReader(_Reader):
    """An incoming byte stream: iterate it for ``bytes`` chunks, or ``read_all()``."""

    _join = b"".join

    def __next__(self) -> bytes:
        return bytes(self._it.next())

    def read_all(self, timeout: float | None = None) -> bytes:
        """The rest of the data (see :meth:`_Reader.read_all`)."""
        return bytes(super().read_all(timeout))


def register_handler(lk_room: Any, kind: str, topic: str, handler: Any, spawn: Spawn) -> None:
    """Register ``handler(reader, participant_identity)`` for ``kind`` ("text" or "byte")
    streams on ``topic``; ``ValueError`` if the topic already has one."""
    if not isinstance(topic, str):
        raise TypeError(f"a stream topic must be a str, got {type(topic).__name__}")
    if not callable(handler):
        raise TypeError(f"a {kind} stream handler must be callable, got {handler!r}")
    reader_cls = TextStreamReader if kind == "text" else ByteStreamReader

    def opened(lk_reader: Any, identity: str) -> None:  # the loop thread, from livekit
        _bridge.post_to_hub(_start, spawn, handler, reader_cls, lk_reader, identity)

    _bridge.call(getattr(lk_room, f"register_{kind}_stream_handler"), topic, opened)


def unregister_handler(lk_room: Any, kind: str, topic: str) -> None:
    """Forget the ``kind`` stream handler of ``topic`` (no-op when there is none)."""
    _bridge.call(getattr(lk_room, f"unregister_{kind}_stream_handler"), topic)


def _start(spawn: Spawn, handler: Any, reader_cls: type, lk_reader: Any, identity: str) -> None:
    # the hub: the facade (and its gevent primitives) must be made here, not on the loop
    reader = reader_cls(lk_reader)
    try:
        spawn(_run_handler, handler, reader, identity)
    except Exception as exc:  # the job ended meanwhile: nobody will read this stream
        logger.debug("stream on {!r} dropped: {}", reader.info.topic, exc)
        reader.close()


def _run_handler(handler: Any, reader: _Reader, identity: str) -> None:
    try:
        handler(reader, identity)
    except Exception:
        logger.opt(exception=True).error(
            "stream handler for topic {!r} failed", getattr(reader.info, "topic", "")
        )


# -- writers ------------------------------------------------------------------------------------


class _Writer:
    def __init__(self, lk_writer: Any) -> None:
        self._lk = lk_writer
        self._closed = False

    @property
    def info(self) -> Any:
        """The stream's ``TextStreamInfo`` / ``ByteStreamInfo``."""
        return self._lk.info

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    def close(
        self,
        *,
        reason: str = "",
        attributes: dict[str, str] | None = None,
        timeout: float | None = None,
    ) -> None:
        """End the stream (blocking; a second call does nothing). A non-empty ``reason`` ends
        it as failed: the reader gets ``rtc.StreamError(reason)``."""
        if self._closed:
            return
        self._closed = True
        _bridge.run(self._lk.aclose(reason=reason, attributes=attributes), timeout=timeout)

    def __enter__(self) -> _Writer:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc is None:
            self.close()
        elif not self._closed:
            self._closed = True
            try:
                _bridge.run(self._lk.aclose(reason=f"{exc_type.__name__}: {exc}"), timeout=10)
            except Exception as close_exc:  # the original exception is what matters
                logger.debug("closing a failed stream: {}", close_exc)


class TextStreamWriter(_Writer):
    """An outgoing text stream (``local_participant.stream_text``)."""

    def write(self, text: str, timeout: float | None = None) -> None:
        """Send one chunk of text; blocks until livekit took it."""
        if not isinstance(text, str):
            raise TypeError(f"TextStreamWriter.write takes a str, got {type(text).__name__}")
        _bridge.run(self._lk.write(text), timeout=timeout)

    def __enter__(self) -> TextStreamWriter:
        return self


class ByteStreamWriter(_Writer):
    """An outgoing byte stream (``local_participant.stream_bytes``)."""

    def write(self, data: bytes | bytearray | memoryview, timeout: float | None = None) -> None:
        """Send one chunk of bytes; blocks until livekit took it."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"ByteStreamWriter.write takes bytes, got {type(data).__name__}")
        _bridge.run(self._lk.write(bytes(data)), timeout=timeout)

    def __enter__(self) -> ByteStreamWriter:
        return self
