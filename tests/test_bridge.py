"""The bridge: coroutines and async iterators driven from greenlets, never stalling the hub."""

from __future__ import annotations

import asyncio
import gc
import time
import types
from typing import Any

import gevent
import gevent.event
import numpy as np
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


def test_blocking_iterator_delivers_a_short_burst_then_silence() -> None:
    # items closer together than _BURST_GAP wake a waiting reader once per batch, from a timer:
    # a burst smaller than a batch, followed by nothing, must still reach it
    made: list[_bridge.BlockingIterator[int]] = []  # the pump may start before we hold it

    async def burst_then_silence() -> "asyncio.AsyncGenerator[int, None]":  # noqa: UP037
        while not made:
            await asyncio.sleep(0.001)
        for i in range(10):
            yield i
            # the next item comes as soon as the reader waits again, within the burst gap
            since = time.monotonic()
            while not made[0]._waiting and time.monotonic() - since < _bridge._BURST_GAP * 0.8:
                await asyncio.sleep(0)
        await asyncio.sleep(60)
        yield 99

    it = _bridge.BlockingIterator(burst_then_silence)
    made.append(it)
    try:
        got = [it.next(timeout=5) for _ in range(10)]  # a lost wake-up: TimeoutError
    finally:
        it.close()
    assert got == list(range(10))


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


def test_close_while_the_pump_closes_does_not_cancel_what_on_close_awaits() -> None:
    # livekit's AudioStream.aclose() awaits the stream's own task, which unsubscribes from the
    # FFI queue when it ends: cancelling it there left a dead subscriber behind for good
    closing = gevent.event.Event()
    inner_done = gevent.event.AsyncResult()

    async def one() -> "asyncio.AsyncGenerator[int, None]":  # noqa: UP037
        yield 1

    async def on_close() -> None:
        async def livekit_task() -> None:
            try:
                await asyncio.sleep(0.2)
                _bridge.post_to_hub(inner_done.set, "finished")
            except asyncio.CancelledError:
                _bridge.post_to_hub(inner_done.set, "cancelled")
                raise

        inner = asyncio.ensure_future(livekit_task())
        _bridge.post_to_hub(closing.set)
        await inner

    it = _bridge.BlockingIterator(one, on_close=on_close)
    assert it.next(timeout=5) == 1
    assert closing.wait(5), "the pump never reached on_close"
    it.close()  # while on_close awaits the inner task
    assert inner_done.get(timeout=5) == "finished"


def test_post_to_hub_from_native_thread() -> None:
    done = gevent.event.AsyncResult()

    def on_native_thread() -> None:
        _bridge.post_to_hub(done.set, "from a native thread")

    _bridge.call_soon(on_native_thread)
    assert done.get(timeout=5) == "from a native thread"


# -- the FFI event dispatcher (livekit's FfiQueue, indexed by handle) -------------------------


def _ffi_queue() -> Any:
    from livekit.rtc._ffi_client import FfiClient

    _bridge.loop()  # the bridge installs its dispatcher before the FFI client exists
    queue = FfiClient.instance.queue
    assert isinstance(queue, _bridge._EventDispatcher), "livekit's own FfiQueue is in use"
    return queue


def _livekit_filter(kind: str | None, value: Any = None) -> tuple[Any, Any]:
    """(filter, its closure cell): a filter as livekit's own code builds it for ``kind``
    (None: a Room's), from livekit's code object."""
    from livekit.rtc._proto import ffi_pb2

    from syncagents._internals import KindFilter, livekit_event_filters

    for code, spec in livekit_event_filters(ffi_pb2.FfiEvent).items():
        if kind is None and isinstance(spec, KindFilter):
            return types.FunctionType(code, {}, "room_filter"), None
        if kind is not None and getattr(spec, "kind", None) == kind:
            cell = types.CellType(value)
            return types.FunctionType(code, {}, "filter", None, (cell,)), cell
    raise AssertionError(f"no livekit filter for {kind}")


def _event(kind: str, field: str = "", value: int = 0) -> Any:
    from livekit.rtc._proto import ffi_pb2

    event = ffi_pb2.FfiEvent()
    getattr(event, kind).SetInParent()
    if field:
        setattr(getattr(event, kind), field, value)
    return event


def _is_ours(event: Any, handle: int) -> bool:
    """An audio stream event for ``handle`` (the queue is shared with the whole process)."""
    return bool(
        event.WhichOneof("message") == "audio_stream_event"
        and event.audio_stream_event.stream_handle == handle
    )


def _drained(queues: list[Any]) -> list[list[Any]]:
    """What each queue holds, read on the loop (after every hand-over scheduled so far)."""

    async def take() -> list[list[Any]]:
        out = []
        for q in queues:
            items = []
            while not q.empty():
                items.append(q.get_nowait())
            out.append(items)
        return out

    return _bridge.run(take(), timeout=10)


def test_dispatcher_gives_each_event_to_exactly_the_subscribers_livekit_would() -> None:
    queue = _ffi_queue()
    loop = _bridge.loop()
    base = 10**12  # handles far from any real one
    stream_a, _ = _livekit_filter("audio_stream_event", base + 1)
    stream_b, _ = _livekit_filter("audio_stream_event", base + 2)
    pending, pending_cell = _livekit_filter("audio_stream_event", None)  # id not known yet
    reader, _ = _livekit_filter("text_stream_reader_event", base + 5)
    room, _ = _livekit_filter(None)
    filters: list[Any] = [
        stream_a, stream_b, pending, reader, room,
        None,  # livekit's request/response waits: every event
        lambda e: e.WhichOneof("message") == "room_event",  # one the dispatcher cannot index
    ]
    queues = [queue.subscribe(loop, f) for f in filters]
    events = [
        _event("audio_stream_event", "stream_handle", base + 1),
        _event("audio_stream_event", "stream_handle", base + 2),
        _event("audio_stream_event", "stream_handle", base + 3),
        _event("text_stream_reader_event", "reader_handle", base + 5),
        _event("text_stream_reader_event", "reader_handle", base + 6),
        _event("room_event"),
        _event("capture_audio_frame", "async_id", base + 7),
    ]
    expected: list[list[Any]] = [[] for _ in filters]
    try:
        for round_ in range(2):
            if round_ == 1:
                pending_cell.cell_contents = base + 3  # livekit's request returned
            for event in events:
                for i, f in enumerate(filters):  # what livekit's FfiQueue.put would deliver
                    if f is None or f(event):
                        expected[i].append(event)
                queue.put(event)  # as the native callback does
        # the catch-all and room subscribers also get the other events of the process's FFI
        # queue (from livekit objects of earlier tests): count only this test's own
        ours = {id(event) for event in events}
        got = [[x for x in g if id(x) in ours] for g in _drained(queues)]
    finally:
        for q in queues:
            queue.unsubscribe(q)
    for i, (g, e) in enumerate(zip(got, expected)):
        assert [id(x) for x in g] == [id(x) for x in e], f"subscriber {i}"
    # the indexed ones got exactly their own: checked against livekit's filters above, and
    assert len(got[0]) == 2 and len(got[1]) == 2  # stream a / b: their frame, twice
    assert len(got[2]) == 3 + 1  # pending: every stream event, then its own only
    assert len(got[4]) == 2 * 4  # the room: all but the 3 audio stream events


def test_dispatcher_unsubscribe_stops_delivery() -> None:
    queue = _ffi_queue()
    loop = _bridge.loop()
    handle = 10**12 + 42
    f, _ = _livekit_filter("audio_stream_event", handle)
    q1, q2 = queue.subscribe(loop, f), queue.subscribe(loop, None)
    queue.put(_event("audio_stream_event", "stream_handle", handle))
    queue.unsubscribe(q1)
    queue.unsubscribe(q1)  # twice: harmless, as in livekit
    # livekit's own view of its subscribers (other objects of the process come and go in it)
    subscribed = [q for q, _, _ in queue._subscribers]
    assert all(q is not q1 for q in subscribed) and any(q is q2 for q in subscribed)
    queue.put(_event("audio_stream_event", "stream_handle", handle))
    queue.unsubscribe(q2)
    # q2 takes every event of the process's FFI queue: count only this test's own
    got = [[e for e in g if _is_ours(e, handle)] for g in _drained([q1, q2])]
    assert [len(g) for g in got] == [1, 2]
    assert all(q is not q1 and q is not q2 for q, _, _ in queue._subscribers)


def test_dispatcher_survives_unsubscribe_from_inside_put() -> None:
    # a finalizer (livekit's __del__) run by the GC in the middle of put() unsubscribes on the
    # same thread, through the re-entrant lock: here a filter does it on purpose
    queue = _ffi_queue()
    loop = _bridge.loop()
    handle = 10**12 + 43
    owned, _ = _livekit_filter("audio_stream_event", handle)
    pending, cell = _livekit_filter("audio_stream_event", None)
    victims: list[Any] = []

    def unsubscribing(event: Any) -> bool:
        while victims:
            queue.unsubscribe(victims.pop())
        return False

    q_owned, q_pending, q_plain = (queue.subscribe(loop, f) for f in (owned, pending, None))
    q_unsub = queue.subscribe(loop, unsubscribing)
    try:
        victims[:] = [q_owned, q_pending, q_plain]
        cell.cell_contents = handle + 1  # promoted during this put, then unsubscribed
        queue.put(_event("audio_stream_event", "stream_handle", handle))
        for _ in range(2):  # nothing reaches them any more, nothing is left behind for them
            queue.put(_event("audio_stream_event", "stream_handle", handle))
            queue.put(_event("audio_stream_event", "stream_handle", handle + 1))
        # q_plain takes every event of the process's FFI queue until removed: count only ours
        got = [[e for e in g if _is_ours(e, handle) or _is_ours(e, handle + 1)]
               for g in _drained([q_owned, q_pending, q_plain])]
        assert all(len(g) <= 1 for g in got)  # at most the event they were removed during
        assert not any(q in (q_owned, q_pending, q_plain) for q, _, _ in queue._subscribers)
    finally:
        queue.unsubscribe(q_unsub)


def _tagged(tag: int, samples: int = 480) -> Any:
    from syncagents import rtc

    return rtc.AudioFrame(np.full(samples, tag, dtype=np.int16).tobytes(), 48000, 1, samples)


def test_two_streams_on_two_tracks_get_only_their_own_frames() -> None:
    from syncagents import rtc

    n = 1500  # per track, both bursts at once (the FFI deadlock of NOTES.md needed ~3000)
    queue = _ffi_queue()
    # livekit's own view of its subscribers; earlier tests' objects may leave it meanwhile
    # (held, so that no new subscriber can take the id of one that left)
    held = [q for q, _, _ in queue._subscribers]
    subscribers_before = {id(q) for q in held}
    tags = {"a": 1000, "b": 20000}
    sources = {k: rtc.AudioSource(48000, 1, queue_size_ms=0) for k in tags}
    streams = {
        k: rtc.AudioStream(rtc.LocalAudioTrack.create_audio_track(k, src), 48000, 1)
        for k, src in sources.items()
    }
    seen: dict[str, set[int]] = {k: set() for k in tags}

    def consume(k: str) -> None:
        for count, ev in enumerate(streams[k], 1):
            seen[k].update(np.frombuffer(ev.frame.data, dtype=np.int16).tolist())
            if count >= n - 10:  # the tail may stay in livekit's 10 ms chunker
                return

    def produce(k: str) -> None:
        for i in range(n):
            sources[k].capture_frame(_tagged(tags[k] + i % 5000))

    gs = [gevent.spawn(consume, k) for k in tags] + [gevent.spawn(produce, k) for k in tags]
    try:
        gevent.joinall(gs, timeout=120, raise_error=True)
        assert all(g.dead for g in gs), "media path stalled (FFI deadlock?)"
    finally:
        for k in tags:
            streams[k].close()
            sources[k].close()
    for k, tag in tags.items():
        assert seen[k] <= set(range(tag, tag + n)), f"stream {k} got another track's frames"
        assert len(seen[k]) >= n - 20
    # closing both streams and sources unsubscribed them all from the FFI queue
    deadline = time.monotonic() + 10

    def left_behind() -> set[int]:
        return {id(q) for q, _, _ in queue._subscribers} - subscribers_before

    while left_behind() and time.monotonic() < deadline:
        gevent.sleep(0.05)  # livekit unsubscribes in its stream's task: no event to wait on
    assert not left_behind()


def test_a_changed_livekit_filter_fails_loudly_naming_the_version(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import importlib.metadata

    from livekit.rtc._proto import ffi_pb2

    from syncagents import _internals

    version = importlib.metadata.version("livekit")
    moved = [  # a filter gone from its place; one that compares another field than expected
        ("audio_stream", "AudioStream", "aclose", "audio_stream_event", "stream_handle",
         "handle_id"),
        ("audio_stream", "AudioStream", "__init__", "audio_stream_event", "track_handle",
         "handle_id"),
    ]
    for entry in moved:
        monkeypatch.setattr(_internals, "_ROUTED_FILTERS", (entry,))
        with pytest.raises(_internals.InternalsChanged) as info:
            _internals.livekit_event_filters(ffi_pb2.FfiEvent)
        assert f"livekit {version}" in str(info.value)
        assert f"livekit.rtc.audio_stream.AudioStream.{entry[2]}" in str(info.value)
