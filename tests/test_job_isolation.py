"""A job owns everything it starts, and nothing a job does takes the worker down (issue 10).

Each scenario runs a real worker against ``DispatchServer`` in a subprocess: if isolation broke,
the process itself would exit — which is what these tests would then see.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

SCRIPT = """
import sys
import syncagents
import gevent
from livekit.protocol import agent as proto
from syncagents.testing import DispatchServer
from syncagents.worker import Worker, WorkerOptions

spawned = []

def entry(ctx):
    what = ctx.job.metadata
    if what == "ok":
        return
    if what == "exit-in-spawn":
        ctx.spawn(sys.exit, 3)
    elif what == "exit-in-plain-spawn":
        gevent.spawn(sys.exit, 3)
    elif what == "interrupt-in-spawn":
        def ctrl_c():
            raise KeyboardInterrupt
        gevent.spawn(ctrl_c)
    elif what == "exit-in-entrypoint":
        raise SystemExit(3)
    elif what == "many":
        for _ in range(10_000):
            spawned.append(gevent.spawn(gevent.sleep, 3600))
        ctx.shutdown("done")
    gevent.sleep(3600)

with DispatchServer() as srv:
    w = Worker(WorkerOptions(entrypoint_fnc=entry, ws_url=srv.url, api_key=srv.api_key,
                             api_secret=srv.api_secret, port=0, load_fnc=lambda: 0.0))
    g = gevent.spawn(w.run)
    w.wait_for_registration(10)
    h = srv.dispatch(room="bad", metadata=sys.argv[1]).wait_ended(timeout=30)
    print("BAD", proto.JobStatus.Name(h.status), repr(h.error))
    print("ALIVE", sum(1 for x in spawned if not x.dead), "of", len(spawned))
    ok = srv.dispatch(room="next", metadata="ok").wait_ended(timeout=30)
    print("NEXT", proto.JobStatus.Name(ok.status))
    w.close()
    g.join(10)
print("WORKER-SURVIVED")
"""


def _run(scenario: str) -> str:
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(SCRIPT), scenario],
        capture_output=True, text=True, timeout=120,
    )
    assert "WORKER-SURVIVED" in out.stdout, (out.returncode, out.stdout, out.stderr[-3000:])
    assert out.returncode == 0
    return out.stdout


@pytest.mark.parametrize(
    ("scenario", "error"),
    [
        ("exit-in-spawn", "SystemExit: 3"),
        ("exit-in-plain-spawn", "SystemExit: 3"),
        ("interrupt-in-spawn", "KeyboardInterrupt"),
        ("exit-in-entrypoint", "SystemExit: 3"),
    ],
)
def test_exit_or_interrupt_in_a_job_fails_only_that_job(scenario: str, error: str) -> None:
    out = _run(scenario)
    assert f"BAD JS_FAILED '{error}'" in out
    assert "NEXT JS_SUCCESS" in out  # and the worker serves the next job


def test_greenlets_spawned_by_a_job_die_with_it() -> None:
    out = _run("many")
    assert "BAD JS_SUCCESS" in out
    assert "ALIVE 0 of 10000" in out
