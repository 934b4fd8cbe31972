"""Runtime: to_thread, hub-block detection naming the job, the patch policy."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time

import gevent
import gevent.event
import gevent.pool
import pytest

import syncagents
from syncagents import _bridge, runtime
from syncagents.log import setup_logging


def _cpu_loop(seconds: float) -> int:
    end = time.perf_counter() + seconds
    n = 0
    while time.perf_counter() < end:
        n += 1
    return n


def test_to_thread_leaves_the_hub_free_and_returns() -> None:
    # the native thread waits for a greenlet: only possible if the hub runs meanwhile
    released = _bridge.real_lock()
    released.acquire()

    def in_thread() -> str:
        if not released.acquire(True, 10):
            return "the hub never ran"
        return "ok"

    def greenlet_side() -> None:
        released.release()

    gevent.spawn(greenlet_side)
    assert syncagents.to_thread(in_thread) == "ok"


def test_to_thread_reraises_and_passes_kwargs() -> None:
    def fail(msg: str, *, code: int) -> None:
        raise KeyError(f"{msg}-{code}")

    with pytest.raises(KeyError, match="x-7"):
        syncagents.to_thread(fail, "x", code=7)


def test_to_thread_is_bounded_by_gevent_timeout() -> None:
    with pytest.raises(gevent.Timeout), gevent.Timeout(0.1):
        syncagents.to_thread(_cpu_loop, 0.5)


def test_busy_greenlet_triggers_hub_block_warning_with_job_id() -> None:
    monitor = runtime.enable_hub_block_detection(max_blocking_ms=100)
    stream = io.StringIO()
    setup_logging("INFO", "json", stream=stream)
    hits: list[tuple[str | None, float, str]] = []
    got = gevent.event.Event()

    def listener(job_id: str | None, ms: float, stack: str) -> None:
        hits.append((job_id, ms, stack))
        _bridge.post_to_hub(got.set)

    monitor.listeners.append(listener)
    idle = [gevent.spawn(gevent.sleep, 60) for _ in range(1000)]  # bystanders
    scope = runtime.JobScope("AJ_busy123")
    try:

        def busy_job_body() -> None:
            # a plain gevent.spawn child belongs to the job; its spawner is gone by then
            gevent.spawn(_cpu_loop, 0.3)

        scope.spawn(busy_job_body).join(timeout=10)
        assert got.wait(10), "no hub-block event"
        gevent.wait([g for g in scope.greenlets()], timeout=10)
        gevent.sleep(0)  # the switch that ends the block logs the total
    finally:
        monitor.listeners.remove(listener)
        monitor.uninstall()
        scope.close()
        gevent.killall(idle)
        setup_logging("INFO", "pretty", stream=sys.stderr)
    job_id, ms, stack = hits[0]
    assert job_id == "AJ_busy123"
    assert ms >= 100  # the measured time, not the threshold
    assert "_cpu_loop" in stack
    assert "sleep" not in stack  # only the blocking greenlet's stack, not the bystanders'
    lines = [json.loads(x) for x in stream.getvalue().splitlines() if x.strip()]
    warnings = [x for x in lines if x["message"].startswith("hub blocked")]
    assert len(warnings) == 1 and warnings[0]["level"] == "WARNING"
    assert warnings[0]["job_id"] == "AJ_busy123"
    assert "AJ_busy123" in warnings[0]["message"]
    totals = [x for x in lines if "in total" in x["message"]]
    assert totals and totals[0]["job_id"] == "AJ_busy123"
    total_ms = float(totals[0]["message"].split("blocked ")[1].split(" ms")[0])
    assert total_ms >= 300  # the whole busy loop, measured at the switch that ended it


def test_job_id_is_bound_at_spawn_time_and_outlives_the_spawner() -> None:
    result = gevent.event.AsyncResult()
    go = gevent.event.Event()

    def grandchild() -> None:
        go.wait(5)  # runs on after both of its ancestors ended
        result.set(runtime.current_job_id())

    def child() -> None:
        gevent.spawn(grandchild)

    scope = runtime.JobScope("AJ_tree")
    parent = scope.spawn(lambda: gevent.spawn(child).join())
    parent.join(timeout=5)
    gevent.sleep(0)
    go.set()
    assert result.get(timeout=5) == "AJ_tree"
    assert runtime.current_job_id() is None
    scope.close()


def test_a_scope_kills_everything_spawned_in_it_by_anyone() -> None:
    scope = runtime.JobScope("AJ_many")
    started = gevent.event.Event()

    def body() -> None:
        for _ in range(10_000):
            gevent.spawn(gevent.sleep, 60)
        pool = gevent.pool.Pool(5)
        for _ in range(5):
            pool.spawn(gevent.sleep, 60)
        gevent.Greenlet(gevent.sleep, 60).start()
        started.set()
        gevent.sleep(60)

    scope.spawn(body)
    assert started.wait(10)
    gevent.sleep(0)  # every greenlet has run once (and been adopted)
    assert len(scope) >= 10_007
    survivors = scope.close(timeout=10)
    assert survivors == []
    assert len(scope) == 0
    with pytest.raises(RuntimeError, match="AJ_many has ended"):
        scope.spawn(gevent.sleep, 1)


def test_system_exit_in_a_job_greenlet_fails_only_that_job() -> None:
    failures: list[BaseException] = []
    failed = gevent.event.Event()

    def on_failure(exc: BaseException) -> None:
        failures.append(exc)
        failed.set()

    scope = runtime.JobScope("AJ_exit", on_failure=on_failure)
    scope.spawn(lambda: gevent.spawn(sys.exit, 3))
    assert failed.wait(5)
    gevent.sleep(0)  # the main greenlet (this test) is still alive: the process did not exit
    assert isinstance(failures[0], SystemExit) and failures[0].code == 3
    interrupted = runtime.JobScope("AJ_int", on_failure=on_failure)

    def ctrl_c() -> None:
        raise KeyboardInterrupt

    failed.clear()
    interrupted.spawn(ctrl_c)
    assert failed.wait(5)
    assert isinstance(failures[1], KeyboardInterrupt)
    scope.close()
    interrupted.close()


def _run(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **env}
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=full_env
    )


def test_import_patches_gevent() -> None:
    out = _run(
        "import syncagents; from gevent import monkey; print(monkey.is_module_patched('socket'))"
    )
    assert out.stdout.strip() == "True", out.stderr


def test_no_patch_env_opt_out() -> None:
    out = _run(
        "import syncagents; from gevent import monkey; print(monkey.is_module_patched('socket'))",
        SYNCAGENTS_NO_PATCH="1",
    )
    assert out.stdout.strip() == "False", out.stderr


def test_late_import_warns_once() -> None:
    out = _run("import asyncio, ssl; import syncagents")
    assert out.returncode == 0
    assert out.stderr.count("patched gevent after") == 1
    assert "asyncio" in out.stderr and "ssl" in out.stderr


def test_a_moved_internal_fails_loudly_naming_the_version() -> None:
    import importlib.metadata

    from syncagents._internals import InternalsChanged, check_websocket

    class NoRecv:  # what a websocket-client without WebSocket._recv(bufsize) would look like
        pass

    with pytest.raises(InternalsChanged) as info:
        check_websocket(NoRecv)
    version = importlib.metadata.version("websocket-client")
    assert f"websocket-client {version}" in str(info.value)
    assert "WebSocket._recv" in str(info.value)
