"""Chan: the blocking queue every stream is built on."""

from __future__ import annotations

import time

import gevent
import pytest
from gevent.event import Event

from syncagents.channel import Chan, ChanClosed, ChanEmpty, ChanFull, ChanStream


def test_fifo_and_iteration_ends_when_closed_and_drained() -> None:
    ch: Chan[int] = Chan()
    for i in range(5):
        ch.send(i)
    ch.close()
    assert list(ch) == [0, 1, 2, 3, 4]
    with pytest.raises(ChanClosed):
        ch.recv(timeout=1)


def test_unbounded_send_never_blocks() -> None:
    for size in (None, 0):
        ch: Chan[int] = Chan(size)
        for i in range(10_000):
            ch.send(i, timeout=0)
        assert len(ch) == 10_000


def test_recv_timeout() -> None:
    ch: Chan[int] = Chan()
    start = time.monotonic()
    with pytest.raises(TimeoutError):
        ch.recv(timeout=0.05)
    assert time.monotonic() - start >= 0.04
    with pytest.raises(ChanEmpty):
        ch.recv_nowait()


def test_close_wakes_blocked_receiver() -> None:
    ch: Chan[int] = Chan()
    waiting = Event()

    def consumer() -> str:
        waiting.set()
        try:
            ch.recv()
        except ChanClosed:
            return "closed"
        return "item"

    g = gevent.spawn(consumer)
    assert waiting.wait(5)
    gevent.idle()
    ch.close()
    assert g.get(timeout=5) == "closed"


def test_close_wakes_blocked_sender_and_send_after_close_raises() -> None:
    ch: Chan[int] = Chan(1)
    ch.send(1)
    g = gevent.spawn(ch.send, 2)
    gevent.idle()
    assert not g.ready()  # blocked: the channel is full
    ch.close()
    with pytest.raises(ChanClosed):
        g.get(timeout=5)
    with pytest.raises(ChanClosed):
        ch.send_nowait(3)
    assert list(ch) == [1]  # what was queued before close is still delivered


def test_backpressure() -> None:
    ch: Chan[int] = Chan(2)
    sent: list[int] = []

    def producer() -> None:
        for i in range(6):
            ch.send(i)
            sent.append(i)
        ch.close()

    g = gevent.spawn(producer)
    gevent.idle()
    assert sent == [0, 1]  # the third send blocks on the full channel
    with pytest.raises(ChanFull):
        ch.send_nowait(99)
    assert ch.recv(timeout=1) == 0
    gevent.idle()
    assert sent == [0, 1, 2]  # one slot freed: exactly one more send went through
    with pytest.raises(TimeoutError):
        ch.send(42, timeout=0.01)  # still full (the producer is blocked again)
    assert list(ch) == [1, 2, 3, 4, 5]
    g.get(timeout=5)


def test_close_with_error_reraises_after_drain() -> None:
    ch: Chan[int] = Chan()
    ch.send(1)
    ch.close_with_error(ValueError("producer broke"))
    got = []
    with pytest.raises(ValueError, match="producer broke"):
        for item in ch:
            got.append(item)
    assert got == [1]


def test_many_producers_and_consumers() -> None:
    ch: Chan[int] = Chan(3)
    results: list[int] = []

    def produce(base: int) -> None:
        for i in range(100):
            ch.send(base + i, timeout=10)

    def consume() -> None:
        for item in ch:
            results.append(item)

    producers = [gevent.spawn(produce, k * 1000) for k in range(4)]
    consumers = [gevent.spawn(consume) for _ in range(3)]
    gevent.joinall(producers, timeout=10, raise_error=True)
    ch.close()
    gevent.joinall(consumers, timeout=10, raise_error=True)
    assert sorted(results) == sorted(k * 1000 + i for k in range(4) for i in range(100))


def test_killed_waiter_passes_its_wakeup_on() -> None:
    ch: Chan[int] = Chan()
    a = gevent.spawn(ch.recv)
    b = gevent.spawn(ch.recv, 5)
    gevent.idle()
    # the kill is delivered before the wake-up (hub callbacks run in order): a is woken but
    # dies without taking the item, so it must hand its turn to b
    a.kill(block=False)
    ch.send(7)
    assert b.get(timeout=5) == 7
    assert a.dead


def test_timed_out_waiter_does_not_lose_items() -> None:
    ch: Chan[int] = Chan()
    with pytest.raises(TimeoutError):
        ch.recv(timeout=0.01)
    ch.send(1)
    assert ch.recv(timeout=1) == 1


class _Numbers(ChanStream[int]):
    def __init__(self, n: int, fail: bool = False, block: bool = False) -> None:
        super().__init__()
        self.stopped = Event()
        self._spawn_producer(lambda: self._run(n, fail, block))

    def _run(self, n: int, fail: bool, block: bool) -> None:
        try:
            for i in range(n):
                self._out.send(i)
            if fail:
                raise RuntimeError("plugin failed")
            if block:
                Event().wait()
        finally:
            self.stopped.set()


def test_chan_stream_end_error_and_close() -> None:
    assert list(_Numbers(3)) == [0, 1, 2]
    with pytest.raises(RuntimeError, match="plugin failed"):
        list(_Numbers(2, fail=True))

    stream = _Numbers(2, block=True)
    assert stream.recv(timeout=5) == 0
    assert stream.recv(timeout=5) == 1
    with pytest.raises(TimeoutError):
        stream.recv(timeout=0.01)  # the producer now waits forever
    consumer = gevent.spawn(list, stream)
    gevent.idle()
    stream.close()  # from another greenlet: iteration ends, the producer is killed
    assert consumer.get(timeout=5) == []
    assert stream.stopped.is_set()
    with pytest.raises(ChanClosed):
        stream.recv(timeout=1)
