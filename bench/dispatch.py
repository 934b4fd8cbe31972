"""Dispatch benchmark: the syncagents worker next to the official livekit-agents worker.

Both run as their own process against one DispatchServer in this process (all timestamps are
``time.time()``, shared by the processes). Jobs join no room: the entrypoint appends
``<job id> <time>`` to a file and sleeps ``float(metadata)`` s. Both workers report load 0,
so load policy does not interfere.

Figures per worker:
1. launch → registered (s);
2. bursts of N jobs dispatched at once (``--repeat`` of them, figures pooled): availability
   answer latency (offer sent → answer received by the server), p50/p99 ms; assignment sent
   → entrypoint running, p50/p99/max ms (goal at N = 500: max ≤ 100 ms in every burst); the
   worker's CPU per job (its whole process tree, user + system, from a burst's start until
   every job ended, divided by the jobs dispatched; the clock ticks in 10 ms);
3. availability answer latency for N jobs paced at 2 ms (goal p99 ≤ 5 ms);
4. assignment sent → entrypoint running, p50/p99 ms, sequential jobs (goal p99 ≤ 2 ms);
5. memory per concurrent idle job: RSS and PSS growth of the worker's process tree with M
   jobs running, divided by M (goal ≤ 0.5 MB/job).

The official worker runs one process per job, so it gets smaller counts by default (its
figures are per job, comparable). It runs when ``--official-python`` (or
``$SYNCAGENTS_OFFICIAL_PYTHON``) names an interpreter with livekit-agents, or the current one
has it. Nothing is asserted. The machine's load average is printed with the figures: on a
shared machine the latencies follow it.

Usage: python bench/dispatch.py [--burst 500] [--repeat 3] [--seq 200] [--idle 500] [--no-official]
       [--official-python PATH] [--official-burst 50] [--official-seq 50] [--official-idle 20]
"""

from __future__ import annotations

# ruff: noqa: I001 - syncagents first: gevent must be patched before subprocess/queue load
import syncagents  # noqa: F401

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any


sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import gevent
import psutil
from livekit.protocol import agent as proto

from syncagents.testing.dispatch_server import DispatchServer, JobHandle
from syncagents.worker import Worker, WorkerOptions

ROOT = Path(__file__).resolve().parent.parent
OFFICIAL_AGENT = ROOT / "tests" / "conformance" / "official_agent.py"

SYNC_APP = """
import os, time
import gevent
from syncagents import WorkerOptions

def entrypoint(ctx):
    with open(os.environ["MARK_FILE"], "a") as f:
        f.write(f"{ctx.job.id} {time.time()}\\n")
    gevent.sleep(float(ctx.job.metadata or 0))

opts = WorkerOptions(entrypoint_fnc=entrypoint, load_fnc=lambda: 0.0, agent_name="bench")
"""


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def summary(values_ms: list[float]) -> dict[str, float]:
    return {
        "n": len(values_ms),
        "p50_ms": round(pct(values_ms, 50), 3),
        "p99_ms": round(pct(values_ms, 99), 3),
        "max_ms": round(max(values_ms), 3) if values_ms else float("nan"),
    }


def tree_memory(pid: int) -> tuple[float, float]:
    """(RSS, PSS) in MB of a process and all its descendants."""
    root = psutil.Process(pid)
    rss = pss = 0
    for p in [root, *root.children(recursive=True)]:
        try:
            info = p.memory_full_info()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        rss += info.rss
        pss += getattr(info, "pss", info.rss)
    return rss / 2**20, pss / 2**20


def running_or_ended(h: JobHandle) -> bool | None:
    return h.status == proto.JS_RUNNING or h.ended or None


def tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) used so far by a process and its descendants, those that
    exited and were reaped included."""
    root = psutil.Process(pid)
    total = 0.0
    for p in [root, *root.children(recursive=True)]:
        try:
            t = p.cpu_times()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        # children_*: the descendants this process reaped (job processes that ended)
        total += t.user + t.system + t.children_user + t.children_system
    return total


def marks(path: Path) -> dict[str, float]:
    if not path.exists():
        return {}
    out = {}
    for line in path.read_text().splitlines():
        job_id, _, t = line.partition(" ")
        out[job_id] = float(t)
    return out


class Subject:
    """One worker process under test."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], tmp: Path) -> None:
        self.name = name
        self.argv = argv
        self.env = env
        self.mark_file = tmp / f"{name}-marks.txt"
        self.log = (tmp / f"{name}.log").open("wb")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, server: DispatchServer, timeout: float = 120) -> float:
        env = {
            **os.environ,
            **self.env,
            "LIVEKIT_URL": server.url,
            "LIVEKIT_API_KEY": server.api_key,
            "LIVEKIT_API_SECRET": server.api_secret,
            "MARK_FILE": str(self.mark_file),
        }
        t0 = time.time()
        self.proc = subprocess.Popen(self.argv, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        worker = server.wait_for_worker(timeout=timeout)
        return worker.registered_at - t0

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                for child in psutil.Process(self.proc.pid).children(recursive=True):
                    child.kill()
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def run_jobs(
    server: DispatchServer, count: int, metadata: str, *, pace: float = 0.0
) -> list[JobHandle]:
    handles = []
    for _ in range(count):
        handles.append(server.dispatch(room="bench", agent_name="bench", metadata=metadata))
        if pace:
            gevent.sleep(pace)  # pacing the offers is the point of this phase
    return handles


def measure(
    subject: Subject,
    bursts: list[int],
    repeat: int,
    paced: int,
    seq: int,
    idle: int,
    log: Callable[[str], None],
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with DispatchServer() as server:
        out["launch_to_registered_s"] = round(subject.start(server), 3)
        log(f"{subject.name}: registered after {out['launch_to_registered_s']} s")
        server.wait_for_worker(lambda w: w.status_updates >= 1, timeout=30)
        for h in run_jobs(server, 5, "0"):  # warm-up (idle processes, caches)
            h.wait_ended(timeout=60)

        assert subject.proc is not None
        for size in bursts:
            answer_ms: list[float] = []
            entry_ms: list[float] = []
            entry_max: list[float] = []  # per burst: the goal holds for every one
            cpu = 0.0
            for _ in range(repeat):
                cpu0 = tree_cpu(subject.proc.pid)
                handles = run_jobs(server, size, "0")
                for h in handles:
                    h.wait_ended(timeout=300)
                cpu += tree_cpu(subject.proc.pid) - cpu0
                answer_ms += [
                    (h.answered_at - h.availability_sent_at) * 1000
                    for h in handles
                    if h.answered_at
                ]
                entered = marks(subject.mark_file)
                lat = [(entered[h.id] - h.assigned_at) * 1000 for h in handles if h.id in entered]
                entry_ms += lat
                entry_max.append(round(max(lat, default=float("nan")), 1))
            out[f"availability_burst_{size}"] = summary(answer_ms)
            out[f"burst_entry_{size}"] = summary(entry_ms)
            out[f"burst_entry_max_each_{size}"] = entry_max
            out[f"burst_cpu_per_job_ms_{size}"] = round(cpu / (size * repeat) * 1000, 3)
            log(
                f"{subject.name}: {repeat} bursts of {size}: availability "
                f"{out[f'availability_burst_{size}']}, assignment -> entrypoint "
                f"{out[f'burst_entry_{size}']} (max per burst {entry_max}), worker CPU "
                f"{out[f'burst_cpu_per_job_ms_{size}']} ms/job"
            )

        handles = run_jobs(server, paced, "0", pace=0.002)
        for h in handles:
            h.wait_ended(timeout=300)
        lat = [(h.answered_at - h.availability_sent_at) * 1000 for h in handles if h.answered_at]
        out["availability_paced_2ms"] = summary(lat)
        log(f"{subject.name}: availability, {paced} paced at 2 ms: {out['availability_paced_2ms']}")

        seq_handles = []
        for _ in range(seq):
            h = server.dispatch(room="bench", agent_name="bench", metadata="0")
            h.wait_ended(timeout=60)
            seq_handles.append(h)
        entered = marks(subject.mark_file)
        lat = [(entered[h.id] - h.assigned_at) * 1000 for h in seq_handles if h.id in entered]
        out["assignment_to_entrypoint"] = summary(lat)
        log(f"{subject.name}: assignment -> entrypoint: {out['assignment_to_entrypoint']}")

        gevent.sleep(1.0)  # let finished jobs' memory settle before the baseline
        rss0, pss0 = tree_memory(subject.proc.pid)
        handles = run_jobs(server, idle, "3600", pace=0.005)
        for h in handles:
            # running, or never run: a worker may decline jobs (the official one does in bursts)
            server.wait_until(partial(running_or_ended, h), 600, f"job {h.id} running")
        running = [h for h in handles if h.status == proto.JS_RUNNING]
        gevent.sleep(1.0)
        rss1, pss1 = tree_memory(subject.proc.pid)
        count = max(len(running), 1)
        out["idle_jobs"] = {
            "jobs": len(running),
            "rss_before_mb": round(rss0, 1),
            "pss_before_mb": round(pss0, 1),
            "rss_per_job_mb": round((rss1 - rss0) / count, 3),
            "pss_per_job_mb": round((pss1 - pss0) / count, 3),
        }
        log(f"{subject.name}: {len(running)} of {idle} idle jobs running: {out['idle_jobs']}")
        for h in running:
            h.terminate()
        t0 = time.time()
        for h in running:
            h.wait_ended(timeout=300)
        out["terminate_all_s"] = round(time.time() - t0, 3)
        subject.stop()
    return out


def worker_service_time(offers: int = 5000) -> float:
    """µs the syncagents worker spends on one offer (parse, accept, serialize the answer),
    in-process with a connection that only serializes: the part of the burst latency that is
    the worker's own, without sockets and the server double's queueing."""

    class SerializingConnection:
        def send(self, msg: proto.WorkerMessage) -> None:
            msg.SerializeToString()

    worker = Worker(
        WorkerOptions(
            entrypoint_fnc=lambda ctx: None,
            load_fnc=lambda: 0.0,
            ws_url="ws://unused",
            api_key="k",
            api_secret="s",
            port=0,
        )
    )
    worker._conn = SerializingConnection()  # type: ignore[assignment]
    frames = []
    for i in range(offers):
        msg = proto.ServerMessage()
        job = msg.availability.job
        job.id, job.agent_name, job.metadata = f"AJ_{i:012d}", "bench", "0"
        job.room.name, job.room.sid = "bench", "RM_000000000000"
        frames.append(msg.SerializeToString())
    t0 = time.perf_counter()
    for data in frames:
        msg = proto.ServerMessage()
        msg.ParseFromString(data)
        worker._handle(msg)
    return (time.perf_counter() - t0) / offers * 1e6


def official_python(arg: str | None) -> str | None:
    for python in filter(None, [arg, os.environ.get("SYNCAGENTS_OFFICIAL_PYTHON"), sys.executable]):
        try:
            probe = subprocess.run([python, "-c", "import livekit.agents"], capture_output=True)
        except OSError:
            continue
        if probe.returncode == 0:
            return python
    return None


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--burst", type=int, default=500)
    ap.add_argument("--repeat", type=int, default=3, help="bursts of each size")
    ap.add_argument("--seq", type=int, default=200)
    ap.add_argument("--idle", type=int, default=500)
    ap.add_argument("--official-python", default=None)
    ap.add_argument("--no-official", action="store_true", help="measure syncagents only")
    ap.add_argument("--official-burst", type=int, default=50)
    ap.add_argument("--official-seq", type=int, default=50)
    ap.add_argument("--official-idle", type=int, default=20)
    ap.add_argument("--json", action="store_true", help="print one JSON document at the end")
    args = ap.parse_args()

    def log(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    results: dict[str, Any] = {}
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        app = tmp / "bench_app.py"
        app.write_text(SYNC_APP)
        ours = Subject(
            "syncagents",
            [sys.executable, "-m", "syncagents.cli", "run", str(app), "--health-port", "0",
             "--log-level", "WARNING", "--max-blocking-ms", "0"],
            {},
            tmp,
        )  # fmt: skip
        try:
            bursts = sorted({args.official_burst, args.burst})
            results["syncagents"] = measure(
                ours, bursts, args.repeat, args.burst, args.seq, args.idle, log
            )
        finally:
            ours.stop()
        python = None if args.no_official else official_python(args.official_python)
        if python is None:
            log("livekit-agents not importable: official worker skipped")
        else:
            theirs = Subject(
                "livekit-agents",
                [python, str(OFFICIAL_AGENT), "start"],
                {"OFFICIAL_AGENT_NAME": "bench", "OFFICIAL_LOAD": "0", "LIVEKIT_LOG_LEVEL": "warn"},
                tmp,
            )
            try:
                results["livekit-agents"] = measure(
                    theirs,
                    [args.official_burst],
                    args.repeat,
                    args.official_burst,
                    args.official_seq,
                    args.official_idle,
                    log,
                )
            finally:
                theirs.stop()

    service = worker_service_time()
    print_table(results)
    print(f"syncagents worker service time per offer (in-process, no socket): {service:.1f} us")
    print(f"load average (1 min) before / after: {load_before:.1f} / {os.getloadavg()[0]:.1f}")
    maxes = results["syncagents"].get(f"burst_entry_max_each_{args.burst}")
    if maxes:
        met = all(m <= 100 for m in maxes)
        print(
            f"goal: bursts of {args.burst}, every entrypoint running <= 100 ms after its "
            f"assignment: {'met' if met else 'MISSED'} (max per burst, ms: {maxes})"
        )
    if args.json:
        print(json.dumps(results, indent=2))


def print_table(results: dict[str, Any]) -> None:
    def get(r: dict[str, Any] | None, key: str, field: str | None = None) -> float:
        if r is None or key not in r:
            return float("nan")
        return float(r[key][field] if field else r[key])

    sizes = sorted({int(k.rsplit("_", 1)[1]) for r in results.values() for k in r if "burst_" in k})
    rows: list[tuple[str, str, str | None]] = [
        ("launch -> registered (s)", "launch_to_registered_s", None)
    ]
    for n in sizes:
        rows += [
            (f"availability, burst {n}, p50 (ms)", f"availability_burst_{n}", "p50_ms"),
            (f"availability, burst {n}, p99 (ms)", f"availability_burst_{n}", "p99_ms"),
            (f"burst {n}: entrypoints run, all bursts", f"burst_entry_{n}", "n"),
            (f"burst {n}: assignment -> entry p50 (ms)", f"burst_entry_{n}", "p50_ms"),
            (f"burst {n}: assignment -> entry p99 (ms)", f"burst_entry_{n}", "p99_ms"),
            (f"burst {n}: assignment -> entry max (ms)", f"burst_entry_{n}", "max_ms"),
            (f"burst {n}: worker CPU per job (ms)", f"burst_cpu_per_job_ms_{n}", None),
        ]
    rows += [
        ("availability, paced, p50 (ms)", "availability_paced_2ms", "p50_ms"),
        ("availability, paced, p99 (ms)", "availability_paced_2ms", "p99_ms"),
        ("assignment -> entry p50 (ms)", "assignment_to_entrypoint", "p50_ms"),
        ("assignment -> entry p99 (ms)", "assignment_to_entrypoint", "p99_ms"),
        ("RSS per idle job (MB)", "idle_jobs", "rss_per_job_mb"),
        ("PSS per idle job (MB)", "idle_jobs", "pss_per_job_mb"),
        ("memory before jobs, PSS (MB)", "idle_jobs", "pss_before_mb"),
    ]
    ours, theirs = results.get("syncagents"), results.get("livekit-agents")
    print(f"{'':40} {'syncagents':>12} {'livekit-agents':>15} {'ratio':>9}")
    for label, key, field in rows:
        a, b = get(ours, key, field), get(theirs, key, field)
        ratio = b / a if a else float("nan")
        print(f"{label:40} {a:>12.3f} {b:>15.3f} {ratio:>8.1f}x")
    for name, r in results.items():
        print(
            f"{name}: paced {r['availability_paced_2ms']['n']} offers, "
            f"{r['assignment_to_entrypoint']['n']} sequential jobs, "
            f"{r['idle_jobs']['jobs']} idle jobs (terminating all took {r['terminate_all_s']} s)"
        )
    print("ratio = livekit-agents / syncagents (higher: syncagents is better)")


if __name__ == "__main__":
    main()
