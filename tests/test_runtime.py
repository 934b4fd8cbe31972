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


def _ticker(lateness: list[float]) -> None:
    while True:
        t = time.perf_counter()
        gevent.sleep(0.005)
        lateness.append(time.perf_counter() - t - 0.005)


def test_to_thread_keeps_the_hub_ticking_and_returns() -> None:
    lateness: list[float] = []
    tk = gevent.spawn(_ticker, lateness)
    gevent.sleep(0)
    n = syncagents.to_thread(_cpu_loop, 0.3)
    tk.kill()
    assert n > 0
    # the ticker ran all along: ~60 ticks in 300 ms, none of them held up by the CPU loop
    assert len(lateness) > 20
    assert max(lateness) < 0.05


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
    try:

        def busy_job_body() -> None:
            # a child greenlet spawned with plain gevent.spawn inherits the job id
            child = gevent.spawn(_cpu_loop, 0.3)
            child.join()

        g = gevent.spawn(busy_job_body)
        runtime.bind_job_id(g, "AJ_busy123")
        g.join(timeout=10)
        assert got.wait(5), "no hub-block event within 5 s"
    finally:
        monitor.listeners.remove(listener)
        monitor.uninstall()
        setup_logging("INFO", "pretty", stream=sys.stderr)
    job_id, ms, stack = hits[0]
    assert job_id == "AJ_busy123"
    assert ms >= 100
    assert "_cpu_loop" in stack
    lines = [json.loads(x) for x in stream.getvalue().splitlines() if x.strip()]
    warnings = [x for x in lines if x["message"].startswith("hub blocked")]
    assert warnings and warnings[0]["level"] == "WARNING"
    assert warnings[0]["job_id"] == "AJ_busy123"
    assert "AJ_busy123" in warnings[0]["message"]


def test_job_id_inherited_through_spawn_tree() -> None:
    result = gevent.event.AsyncResult()

    def grandchild() -> None:
        result.set(runtime.current_job_id())

    def child() -> None:
        gevent.spawn(grandchild).join()

    g = gevent.spawn(lambda: gevent.spawn(child).join())
    runtime.bind_job_id(g, "AJ_tree")
    g.join(timeout=5)
    assert result.get(timeout=5) == "AJ_tree"
    assert runtime.current_job_id() is None


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
