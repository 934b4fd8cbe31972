"""``InputStream``: the input half shared by the VAD, STT and TTS streams.

Each of those streams is fed by one greenlet (``push_frame`` / ``push_text``, ``flush()``,
``end_input()``) and iterated by another, while a producer greenlet owned by the stream turns
the input into output. This base owns the input side, so the three behave alike:

* the input queue is unbounded: pushing never blocks the caller (a live audio source or an
  LLM must not stall on a slow model);
* ``flush()`` queues a ``Flush`` marker, in order with the input: the end of the current
  segment (what a segment's end means is the stream's business: see each stream class);
* ``end_input()`` closes the queue: no more input, the last segment ends, iteration ends once
  the producer has said everything;
* pushing or flushing after ``end_input()`` or ``close()`` raises ``RuntimeError`` naming the
  stream and the call; ``end_input()`` itself may be called again, or after ``close()``;
* ``close()`` (from ``ChanStream``) also closes the input, so a producer waiting for input
  wakes up and is killed.

Producers read ``_input`` directly (the VAD batches whatever is queued) or segment by segment
with ``_segments()`` (STT and TTS hand each segment to a plugin generator).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from ..channel import Chan, ChanClosed, ChanStream

__all__ = ["Flush", "InputStream"]

InT = TypeVar("InT")
OutT = TypeVar("OutT")


class Flush:
    """The marker ``flush()`` puts in an input queue: the current segment ends here."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "Flush()"


_FLUSH = Flush()


class InputStream(ChanStream[OutT], Generic[InT, OutT]):
    """A ``ChanStream`` fed through an input queue of ``InT`` items and ``Flush`` markers.

    Subclasses add the public ``push_*`` method (calling ``_push``), start their producer
    with ``_spawn_producer`` and read ``_input`` or ``_segments()`` in it.
    """

    def __init__(self) -> None:
        super().__init__()  # unbounded output: the producer never waits on a slow consumer
        self._input: Chan[InT | Flush] = Chan()  # unbounded: pushing never blocks its caller
        self._input_ended = False

    def flush(self) -> None:
        """End the current segment here: the stream finishes what was pushed so far as one
        segment (see the stream class for what that produces); later input starts a new one.
        Never blocks. ``RuntimeError`` after ``end_input()`` or ``close()``."""
        self._check_input("flush")
        self._input.send_nowait(_FLUSH)

    def end_input(self) -> None:
        """No more input: the current segment ends, and iteration ends once everything
        pushed before is processed. Calling it again (or after ``close()``) does nothing."""
        self._input_ended = True
        self._input.close()

    def _push(self, op: str, item: InT) -> None:
        """Queue ``item`` for ``op`` (the public method's name, for the error message)."""
        self._check_input(op)
        self._input.send_nowait(item)

    def _check_input(self, op: str) -> None:
        if self._closed:
            raise RuntimeError(f"{type(self).__name__}.{op}() after close()")
        if self._input_ended:
            raise RuntimeError(f"{type(self).__name__}.{op}() after end_input()")

    def _on_close(self) -> None:
        self._input_ended = True
        self._input.close()  # a producer blocked on input wakes up (and is then killed)

    def _on_input(self, item: InT) -> None:
        """Hook: called for each item ``_segments()`` hands out (or skips), in order."""

    def _segments(self) -> Iterator[Iterator[InT]]:
        """The input, one iterator per segment, until the input ends.

        A segment is the items up to the next ``flush()`` or ``end_input()``; empty ones are
        left out. Whatever of a segment its reader did not take is skipped when the next one
        is asked for, so a plugin that stops reading early never reads into the next segment.
        A segment's iterator may be read from another greenlet than this one.
        """
        while True:
            try:
                first = self._input.recv()
            except ChanClosed:
                return
            if isinstance(first, Flush):
                continue  # flush() with nothing since the last one: an empty segment
            segment = _Segment(first, self._input, self._on_input)
            yield segment
            for _ in segment:
                pass


class _Segment(Iterator[InT]):
    """One segment's items: ``first``, then what ``source`` gives until a ``Flush`` or its
    end. A class, not a generator: a generator suspended in one greenlet (a plugin's reader
    waiting for input) cannot be resumed from another one, which skipping the rest needs."""

    def __init__(
        self, first: InT, source: Chan[InT | Flush], on_item: Callable[[InT], None]
    ) -> None:
        self._first: list[InT] = [first]
        self._source = source
        self._on_item = on_item
        self._ended = False

    def __iter__(self) -> Iterator[InT]:
        return self

    def __next__(self) -> InT:
        if self._first:
            item = self._first.pop()
        elif self._ended:
            raise StopIteration
        else:
            try:
                received = self._source.recv()
            except ChanClosed:
                received = _FLUSH  # the end of input ends the segment too
            if isinstance(received, Flush):
                self._ended = True
                raise StopIteration
            item = received
        self._on_item(item)
        return item
