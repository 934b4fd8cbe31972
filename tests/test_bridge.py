"""The bridge: coroutines and async iterators driven from greenlets, never stalling the hub."""

from __future__ import annotations

import asyncio
import gc
import time

import gevent
import gevent.event
import pytest

from syncagents import _bridge


def test_run_returns_and_raises() -> None:
    async def add(a: int, b: int) -> int:
        await asyncio.sleep(0.001)
        return a + b

    async def boom() -> None:
        raise ValueError("bad")

    assert _bridge.run(add(2, 3), timeout=5) == 5
    with pytest.raises(ValueError, match="bad"):
        _bridge.run(boom(), timeout=5)


def test_run_timeout_cancels_coroutine() -> None:
    cancelled = gevent.event.Event()

    async def forever() -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            _bridge.post_to_hub(cancelled.set)
            raise

    t0 = time.monotonic()
    with pytest.raises(TimeoutError):
        _bridge.run(forever(), timeout=0.2)
    assert time.monotonic() - t0 < 2
    assert cancelled.wait(5), "the coroutine was not cancelled on timeout"


def test_killed_greenlet_cancels_its_coroutine() -> None:
    started = gevent.event.Event()
    cancelled = gevent.event.Event()

    async def forever() -> None:
        _bridge.post_to_hub(started.set)
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            _bridge.post_to_hub(cancelled.set)
            raise

    before = _bridge.pending_tasks()  # other tests' rooms may still be closing
    g = gevent.spawn(_bridge.run, forever())
    assert started.wait(5)
    g.kill(block=True, timeout=5)
    assert g.dead
    assert cancelled.wait(5), "killing the greenlet did not cancel its coroutine"
    assert _bridge.pending_tasks() <= before


def test_many_concurrent_calls_keep_hub_responsive() -> None:
    async def echo(i: int) -> int:
        await asyncio.sleep(0.005)
        return i

    ticks: list[float] = []

    def ticker() -> None:
        while True:
            t = time.perf_counter()
            gevent.sleep(0.005)
            ticks.append(time.perf_counter() - t - 0.005)

    gc.collect()  # a full collection left over from earlier tests is not the bridge's lag
    tk = gevent.spawn(ticker)
    gs = [gevent.spawn(_bridge.run, echo(i), 10) for i in range(200)]
    gevent.joinall(gs, timeout=20, raise_error=True)
    tk.kill()
    assert sorted(g.value for g in gs) == list(range(200))
    assert ticks  # the hub ran other greenlets meanwhile (how late: bench/bridge.py)


async def _numbers(n: int) -> "asyncio.AsyncGenerator[int, None]":  # noqa: UP037
    for i in range(n):
        yield i


def test_blocking_iterator_yields_everything_in_order() -> None:
    it = _bridge.BlockingIterator(lambda: _numbers(5000), maxsize=16)
    assert list(it) == list(range(5000))


def test_blocking_iterator_backpressure_bounds_the_buffer() -> None:
    produced = [0]

    async def counting() -> "asyncio.AsyncGenerator[int, None]":  # noqa: UP037
        for i in range(1000):
            produced[0] += 1
            yield i

    it = _bridge.BlockingIterator(counting, maxsize=8)
    assert it.next(timeout=5) == 0
    # give the pump every chance to run ahead: it must stop at the bound
    deadline = time.monotonic() + 0.3
    while time.monotonic() < deadline:
        gevent.sleep(0.01)
    assert produced[0] <= 8 + 2
    assert list(it) == list(range(1, 1000))


def test_blocking_iterator_close_from_other_greenlet_ends_loop() -> None:
    async def slow() -> "asyncio.AsyncGenerator[int, None]":  # noqa: UP037
        yield 1
        await asyncio.sleep(60)
        yield 2

    it = _bridge.BlockingIterator(slow)
    seen: list[int] = []

    def reader() -> None:
        for x in it:
            seen.append(x)

    g = gevent.spawn(reader)
    gevent.wait([g], timeout=0.2)
    it.close()
    g.join(timeout=5)
    assert g.dead and g.successful()
    assert seen == [1]


def test_blocking_iterator_timeout_and_error() -> None:
    async def stuck() -> "asyncio.AsyncGenerator[int, None]":  # noqa: UP037
        await asyncio.sleep(60)
        yield 0

    it = _bridge.BlockingIterator(stuck)
    with pytest.raises(TimeoutError):
        it.next(timeout=0.1)
    it.close()

    async def failing() -> "asyncio.AsyncGenerator[int, None]":  # noqa: UP037
        yield 1
        raise RuntimeError("stream broke")

    it2 = _bridge.BlockingIterator(failing)
    assert it2.next(timeout=5) == 1
    with pytest.raises(RuntimeError, match="stream broke"):
        it2.next(timeout=5)


def test_post_to_hub_from_native_thread() -> None:
    done = gevent.event.AsyncResult()

    def on_native_thread() -> None:
        _bridge.post_to_hub(done.set, "from a native thread")

    _bridge.call_soon(on_native_thread)
    assert done.get(timeout=5) == "from a native thread"
