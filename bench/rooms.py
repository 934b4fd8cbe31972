"""Rooms benchmark: N real rooms on a real livekit-server, syncagents next to the official
livekit-agents worker.

For each N (``--rooms``, default 1,10,25,50) and each implementation, back to back: a fresh
``LiveKitServer`` (loopback), ONE worker process with automatic dispatch (every new room gets
a job), and N users, one per room, all in one separate asyncio process (``rooms_users.py``:
livekit's own SDK, no syncagents) joining one room every 0.5 s. The agent is an echo agent:
silero VAD on the user's microphone, and at each end of speech the utterance is played back
on the agent's track (``rooms_agent_sync.py`` with ``syncagents run``;
``rooms_agent_official.py`` with livekit-agents 1.8.9 + livekit-plugins-silero, in its own
venv). Both report load 0, so neither turns rooms away. The users keep their microphones open
(silence between utterances) and speak espeak utterances generated here every ``--period``
seconds, rooms staggered; after one warm-up utterance per room, ``--duration`` seconds are
measured.

Figures per N and implementation:
- reply latency as the user hears it: last voiced sample sent → first agent audio above
  -40 dBFS, p50/p95 (ms; the VAD's 0.55 s of closing silence is the floor); missed replies
  (none within 5 s; every utterance of a room whose agent never came is one); utterances
  during which the agent was already heard (its VAD cut them short) are counted, not timed;
- CPU seconds per active room-minute of the worker's whole process tree (psutil, children
  included: the official worker runs a process per job), over the measured window;
- RSS and PSS per active room: the tree's memory during the window minus its idle baseline
  before any room, divided by the rooms that got their agent;
- syncagents only: hub lag, how late a 10 ms ticker greenlet in the agent process wakes;
- the harness itself: the users process's CPU and its own loop lag. WebRTC is not cheap:
  each open microphone is an Opus encoder running all the time (~1.4 % of a core here), and
  each agent track another, so past ~20 rooms users + agent + server want more than the
  2 cores. When the users' loop runs > 100 ms late (p99) the N is flagged: its latency and
  misses then measure the overloaded machine rather than the agent.

Goals (stated met/missed at the end): no missed reply at any N; syncagents' reply p95 at
N=50 ≤ 1.3× its N=1 value; syncagents' PSS per room ≤ 1/20 of the official's; syncagents'
CPU per room-minute ≤ the official's. The machine is a noisy shared 2-core box: ratios are
measured side by side in one run, absolute numbers are context. Nothing is asserted.

The official worker runs with ``$SYNCAGENTS_OFFICIAL_PYTHON`` if set, else a venv made once
at ``~/.cache/syncagents/official-venv``; if neither works, only syncagents runs.
``--logs DIR`` keeps every worker's log, the users' events and the hub-lag samples.

Usage: python bench/rooms.py [--rooms 1,10,25,50] [--duration 40] [--only syncagents|official]
       quick: python bench/rooms.py --rooms 1,10 --duration 20
"""

from __future__ import annotations

# ruff: noqa: I001 - syncagents first: gevent must be patched before subprocess/queue load
import syncagents  # noqa: F401

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gevent
import gevent.queue
import numpy as np
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from syncagents.plugins import espeak
from syncagents.testing.livekit_server import LiveKitServer, LiveKitServerError

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SYNC_APP = HERE / "rooms_agent_sync.py"
OFFICIAL_APP = HERE / "rooms_agent_official.py"
USERS = HERE / "rooms_users.py"
OFFICIAL_VERSION = "1.8.9"
OFFICIAL_PACKAGES = [
    f"livekit-agents=={OFFICIAL_VERSION}",
    f"livekit-plugins-silero=={OFFICIAL_VERSION}",  # plugins are released with the framework
]
OFFICIAL_VENV = (
    Path(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"))
    / "syncagents"
    / "official-venv"
)
IMPLS = ("syncagents", "official")

TEXTS = [
    "Hello there, how are you today?",
    "What is the weather like this afternoon?",
    "Please book a table for two at eight.",
    "I would like to hear a short story.",
    "Can you remind me to call my sister?",
    "Turn the lights off in the kitchen.",
]
REPLY_TIMEOUT = 5.0
P95_GOAL = 1.3
HARNESS_LAG_MS = 100.0  # users' loop lag p99 above this: the machine is overloaded
PSS_GOAL = 20.0


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# -- speech -------------------------------------------------------------------------------------


def make_clips(folder: Path) -> list[Path]:
    """espeak utterances as mono 16-bit WAVs whose first and last samples are voiced."""
    tts = espeak.TTS()
    paths = []
    for i, text in enumerate(TEXTS):
        frames = [a.frame for a in tts.synthesize(text)]
        samples = np.concatenate([np.frombuffer(bytes(f.data), dtype=np.int16) for f in frames])
        rate = int(frames[0].sample_rate)
        block = rate // 200  # 5 ms
        n = len(samples) // block
        x = samples[: n * block].astype(np.float32).reshape(n, block) / 32768.0
        loud = np.nonzero(10 * np.log10((x * x).mean(axis=1) + 1e-12) > -45.0)[0]
        samples = samples[loud[0] * block : (loud[-1] + 1) * block]
        path = folder / f"utterance-{i}.wav"
        with wave.open(str(path), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(rate)
            w.writeframes(samples.tobytes())
        paths.append(path)
    return paths


# -- the official worker's interpreter ----------------------------------------------------------


def _imports_official(python: str) -> str | None:
    """None if ``python`` imports livekit-agents and its silero plugin, else why not."""
    try:
        probe = subprocess.run(
            [python, "-c", "import livekit.agents, livekit.plugins.silero"],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    return None if probe.returncode == 0 else (probe.stderr.strip().splitlines() or ["?"])[-1]


def official_python() -> str | None:
    explicit = os.environ.get("SYNCAGENTS_OFFICIAL_PYTHON")
    if explicit:
        why = _imports_official(explicit)
        if why is None:
            return explicit
        log(f"official worker skipped: $SYNCAGENTS_OFFICIAL_PYTHON={explicit}: {why}")
        return None
    python = OFFICIAL_VENV / "bin" / "python"
    if python.exists() and _imports_official(str(python)) is None:
        return str(python)
    log(f"creating the official worker's venv at {OFFICIAL_VENV} ({', '.join(OFFICIAL_PACKAGES)})")
    try:
        subprocess.run(
            [sys.executable, "-m", "venv", str(OFFICIAL_VENV)],
            check=True,
            capture_output=True,
            text=True,
            timeout=300,
        )
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", *OFFICIAL_PACKAGES],
            check=True,
            capture_output=True,
            text=True,
            timeout=900,
        )
    except subprocess.CalledProcessError as exc:
        tail = "\n".join((exc.stderr or exc.stdout or "").strip().splitlines()[-5:])
        log(f"official worker skipped: {' '.join(map(str, exc.cmd[:4]))} failed:\n{tail}")
        return None
    except (OSError, subprocess.TimeoutExpired) as exc:
        log(f"official worker skipped: creating its venv failed: {exc}")
        return None
    why = _imports_official(str(python))
    if why is not None:
        log(f"official worker skipped: its venv does not import livekit-agents: {why}")
        return None
    return str(python)


# -- process trees ------------------------------------------------------------------------------


def tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def tree_cpu(pid: int) -> dict[int, float]:
    """CPU seconds (user + system) of each live process of the tree, by pid."""
    out = {}
    for p in tree(pid):
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            t = p.cpu_times()
            out[p.pid] = t.user + t.system
    return out


def cpu_between(before: dict[int, float], after: dict[int, float]) -> float:
    # processes born in the window count whole; processes that died in it are lost (none
    # should: every room lives through the window)
    return sum(t - before.get(pid, 0.0) for pid, t in after.items())


def tree_memory(pid: int) -> tuple[float, float, int]:
    """(RSS MB, PSS MB, processes) of a process tree."""
    rss = pss = 0
    procs = tree(pid)
    for p in procs:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            info = p.memory_full_info()
            rss += info.rss
            pss += getattr(info, "pss", info.rss)
    return rss / 2**20, pss / 2**20, len(procs)


class Proc:
    """A child process in its own session, output to a file; killed with its whole tree."""

    def __init__(
        self, argv: list[str], env: dict[str, str], log_path: Path, stdout_pipe: bool = False
    ) -> None:
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.proc = subprocess.Popen(
            argv, env=env, cwd=ROOT, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE if stdout_pipe else self._log,
            stderr=self._log, start_new_session=True,
        )  # fmt: skip
        self.pid = self.proc.pid

    def kill(self) -> None:
        procs = tree(self.pid)
        for p in reversed(procs):
            with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
                p.kill()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)  # the session we created for it
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)
        psutil.wait_procs(procs, timeout=5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._log.close()

    def log_tail(self, lines: int = 15) -> str:
        with contextlib.suppress(OSError):
            text = self.log_path.read_bytes()[-32768:].decode("utf-8", "replace")
            return "\n".join(text.splitlines()[-lines:])
        return ""


def wait_for_log(proc: Proc, needle: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.proc.poll() is not None:
            return False
        with contextlib.suppress(OSError):
            if needle in proc.log_path.read_text(errors="replace"):
                return True
        gevent.sleep(0.2)
    return False


def settle(pid: int, timeout: float = 25.0, quiet: float = 0.05) -> None:
    """Wait until the tree has used under ``quiet`` of a core for a second (start-up done,
    idle processes prewarmed), ``timeout`` at most."""
    deadline = time.monotonic() + timeout
    prev = tree_cpu(pid)
    while time.monotonic() < deadline:
        gevent.sleep(1.0)
        cur = tree_cpu(pid)
        if cpu_between(prev, cur) < quiet and len(cur) == len(prev):
            return
        prev = cur


# -- one phase: one implementation, N rooms -------------------------------------------------------


@contextlib.contextmanager
def start_server(rooms: int, attempts: int = 3) -> Iterator[LiveKitServer]:
    """A running server; a port taken between its pick and the bind is retried."""
    for attempt in range(attempts):
        server = LiveKitServer(udp_ports=max(64, 8 * rooms), log_level="warn")
        try:
            server.start()
            break
        except LiveKitServerError as exc:
            server.close()
            if "address already in use" not in str(exc) or attempt == attempts - 1:
                raise
    try:
        yield server
    finally:
        server.close()


def run_phase(
    impl: str, python: str, rooms: int, args: argparse.Namespace, clips: list[Path], tmp: Path
) -> dict[str, Any]:
    tag = f"{impl}-{rooms}"
    ready_timeout = 30 + 1.5 * rooms  # every room joined and has its agent
    out: dict[str, Any] = {"rooms": rooms}
    lag_file = tmp / f"{tag}-lag.jsonl"
    with start_server(rooms) as server:
        env = {
            **os.environ,
            "LIVEKIT_URL": server.url,
            "LIVEKIT_API_KEY": server.api_key,
            "LIVEKIT_API_SECRET": server.api_secret,
            "BENCH_LAG_FILE": str(lag_file),
            "PYTHONUNBUFFERED": "1",
        }
        if impl == "syncagents":
            argv = [
                python,
                "-m",
                "syncagents.cli",
                "run",
                str(SYNC_APP),
                "--health-port",
                "0",
                "--log-format",
                "json",
                "--log-level",
                "INFO",
            ]
        else:
            argv = [python, str(OFFICIAL_APP), "start", "--log-level", "INFO"]
        t0 = time.monotonic()
        worker = Proc(argv, env, tmp / f"{tag}-worker.log")
        users: Proc | None = None
        try:
            if not wait_for_log(worker, "registered worker", 90):
                raise RuntimeError(f"{impl} worker did not register:\n{worker.log_tail()}")
            out["registered_s"] = time.monotonic() - t0
            settle(worker.pid)
            out["base_rss"], out["base_pss"], out["base_procs"] = tree_memory(worker.pid)

            users = Proc(
                [sys.executable, str(USERS), "--url", server.url, f"--api-key={server.api_key}",
                 f"--api-secret={server.api_secret}", "--rooms", str(rooms),
                 "--prefix", f"{tag}-{uuid.uuid4().hex[:6]}", "--period", str(args.period),
                 "--duration", str(args.duration), "--reply-timeout", str(REPLY_TIMEOUT),
                 "--ready-timeout", str(ready_timeout), "--clips", *map(str, clips)],
                {**os.environ, "PYTHONUNBUFFERED": "1"}, tmp / f"{tag}-users.log",
                stdout_pipe=True,
            )  # fmt: skip
            events: gevent.queue.Queue[dict[str, Any] | None] = gevent.queue.Queue()

            def read(stdout: Any) -> None:
                with (tmp / f"{tag}-users-events.jsonl").open("wb") as copy:
                    for raw in stdout:
                        copy.write(raw)
                        copy.flush()
                        with contextlib.suppress(ValueError):
                            events.put(json.loads(raw))
                events.put(None)

            reader = gevent.spawn(read, users.proc.stdout)
            mem_samples: list[tuple[float, float, int]] = []
            cpu0: dict[int, float] = {}
            sampler: gevent.Greenlet | None = None

            def sample_memory() -> None:
                for frac in (0.4, 0.85):  # twice inside the window, averaged
                    gevent.sleep(args.duration * frac - (time.monotonic() - t_start))
                    mem_samples.append(tree_memory(worker.pid))

            # the users' own bounds: joins and agents, warm-up, window, last replies, leaving
            limit = time.monotonic() + ready_timeout + args.period + args.duration + 40
            while True:
                ev = events.get(timeout=max(1.0, limit - time.monotonic()))
                if ev is None:
                    raise RuntimeError(f"users exited early:\n{users.log_tail()}")
                name = ev["event"]
                if name == "error":
                    log(f"  {tag}: user error: {ev.get('message')}")
                elif name == "ready":
                    out["ready"], out["ready_s"] = ev["ready"], ev["seconds"]
                    log(
                        f"  {tag}: {ev['ready']}/{rooms} rooms have their agent after "
                        f"{ev['seconds']} s"
                    )
                elif name == "measure_start":
                    cpu0, t_start, out["t0"] = tree_cpu(worker.pid), time.monotonic(), ev["t"]
                    sampler = gevent.spawn(sample_memory)
                elif name == "measure_end":
                    cpu1, t_end, out["t1"] = tree_cpu(worker.pid), time.monotonic(), ev["t"]
                    out["cpu_s"] = cpu_between(cpu0, cpu1)
                    out["window_s"] = t_end - t_start
                    out["procs_end"] = len(cpu1)
                    if sampler is not None:
                        sampler.join(timeout=5)
                elif name == "result":
                    out.update(ev)
                    break
            reader.kill(block=False)
            out["worker_exit"] = worker.proc.poll()  # None: alive (a panic SIGTERMs it)
            if out["worker_exit"] is not None:
                log(f"  {tag}: the worker exited with code {out['worker_exit']} during the run")
        finally:
            if users is not None:
                users.kill()
            worker.kill()
    # per ACTIVE room: a room whose agent never came costs the agent next to nothing
    active = out.get("ready") or float("nan")
    if mem_samples:
        rss = sum(m[0] for m in mem_samples) / len(mem_samples)
        pss = sum(m[1] for m in mem_samples) / len(mem_samples)
        out["rss_per_room"] = (rss - out["base_rss"]) / active
        out["pss_per_room"] = (pss - out["base_pss"]) / active
        out["procs"] = max(m[2] for m in mem_samples)
    out["cpu_per_room_min"] = out["cpu_s"] / active / (out["window_s"] / 60)
    out["users_cpu_pct"] = 100 * out.get("users_cpu_s", float("nan")) / out["window_s"]
    out["users_lag_p99"] = (out.get("users_loop_lag_ms") or {}).get("p99") or float("nan")
    # a harness that is itself late sends gappy audio and hears late: its figures then
    # measure the machine, not the agent
    out["harness_overloaded"] = not out["users_lag_p99"] <= HARNESS_LAG_MS
    if out.get("worker_exit") is not None:  # what was measured is a dying tree
        for key in ("cpu_per_room_min", "pss_per_room", "rss_per_room"):
            out[key] = float("nan")
    lat = out.get("latencies_ms", [])
    out["p50"] = pct(lat, 50)
    out["p95"] = pct(lat, 95)
    out["replies"] = len(lat)
    if impl == "syncagents":
        out["lag"] = hub_lag(lag_file, out["t0"], out["t1"])
    return out


def hub_lag(path: Path, t0: float, t1: float) -> dict[str, float]:
    lags: list[float] = []
    with contextlib.suppress(OSError):
        for line in path.read_text().splitlines():
            with contextlib.suppress(ValueError, KeyError):
                rec = json.loads(line)
                if t0 <= rec["t"] <= t1 + 1.0:
                    lags.extend(rec["lag_ms"])
    return {
        "p50": pct(lags, 50),
        "p95": pct(lags, 95),
        "p99": pct(lags, 99),
        "max": max(lags) if lags else float("nan"),
        "n": len(lags),
    }


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


# -- report ---------------------------------------------------------------------------------------


def print_table(results: dict[str, dict[int, dict[str, Any]]], ns: list[int]) -> None:
    ours, theirs = results.get("syncagents", {}), results.get("official", {})

    def val(r: dict[str, Any] | None, key: str) -> float:
        if r is None or key not in r:
            return float("nan")
        return float(r[key])

    rows = [
        ("rooms with their agent", "ready", "{:.0f}"),
        ("replies heard", "replies", "{:.0f}"),
        ("missed replies", "missed", "{:.0f}"),
        ("agent heard while user spoke", "overlapped", "{:.0f}"),
        ("reply p50 (ms)", "p50", "{:.0f}"),
        ("reply p95 (ms)", "p95", "{:.0f}"),
        ("CPU s per active room-minute", "cpu_per_room_min", "{:.2f}"),
        ("PSS per active room (MB)", "pss_per_room", "{:.2f}"),
        ("RSS per active room (MB)", "rss_per_room", "{:.2f}"),
        ("tree PSS before rooms (MB)", "base_pss", "{:.0f}"),
        ("processes in the tree", "procs", "{:.0f}"),
        ("launch -> registered (s)", "registered_s", "{:.1f}"),
        ("users process CPU (% of a core)", "users_cpu_pct", "{:.0f}"),
        ("users loop lag p99 (ms)", "users_lag_p99", "{:.0f}"),
    ]
    print()
    print(f"{'':30} {'syncagents':>12} {'livekit-agents':>15} {'ratio':>8}")
    for n in ns:
        a, b = ours.get(n), theirs.get(n)
        if a is None and b is None:
            continue
        print(f"--- N = {n} rooms " + "-" * 50)
        for label, key, fmt in rows:
            x, y = val(a, key), val(b, key)
            counts = key in (
                "ready",
                "replies",
                "missed",
                "overlapped",
                "users_cpu_pct",
                "users_lag_p99",
            )
            ratio = f"{y / x:.1f}x" if x and not counts and x == x and y == y else ""
            xs = fmt.format(x) if x == x else "-"
            ys = fmt.format(y) if y == y else "-"
            print(f"{label:30} {xs:>12} {ys:>15} {ratio:>8}")
        for name, r in (("syncagents", a), ("livekit-agents", b)):
            if r is not None and r.get("worker_exit") is not None:
                print(f"  ! the {name} worker exited (code {r['worker_exit']}) during the run")
            if r is not None and r.get("harness_overloaded"):
                print(
                    f"  ! {name}: the users' own loop ran {r['users_lag_p99']:.0f} ms late "
                    f"(p99 > {HARNESS_LAG_MS:.0f}): machine overloaded, latency and misses "
                    "here measure the box, not the agent"
                )
        if a is not None and "lag" in a:
            lag = a["lag"]
            print(
                f"{'hub lag p50/p95/p99/max (ms)':30} "
                f"{lag['p50']:.1f}/{lag['p95']:.1f}/{lag['p99']:.1f}/{lag['max']:.0f}"
            )
    print("ratio = livekit-agents / syncagents (higher: syncagents is better)")


def print_goals(results: dict[str, dict[int, dict[str, Any]]]) -> None:
    ours, theirs = results.get("syncagents", {}), results.get("official", {})

    def verdict(ok: bool | None) -> str:
        return "n/a" if ok is None else ("met" if ok else "MISSED")

    print("\nGoals (syncagents; '!' = harness overloaded at that N):")
    missed = {n: r.get("missed", 0) for n, r in ours.items()}  # rooms without agent: all missed
    ok = all(v == 0 for v in missed.values()) if missed else None
    detail = ", ".join(
        f"N={n}: {v}{'!' if ours[n].get('harness_overloaded') else ''}"
        for n, v in sorted(missed.items())
    )
    print(f"  no missed reply at any N ({detail}): {verdict(ok)}")
    if 1 in ours and 50 in ours:
        p1, p50 = ours[1]["p95"], ours[50]["p95"]
        ok = p50 <= P95_GOAL * p1  # False when N=50 heard no reply (nan)
        got = f"{p50:.0f} ms vs {p1:.0f} ms = {p50 / p1:.2f}x" if p50 == p50 else "no reply"
        print(f"  reply p95 at N=50 <= {P95_GOAL}x N=1 ({got}): {verdict(ok)}")
    else:
        print(f"  reply p95 at N=50 <= {P95_GOAL}x N=1: n/a (needs N=1 and N=50)")
    both = sorted(set(ours) & set(theirs))
    for key, label, goal in (
        ("pss_per_room", "PSS per room <= 1/20 of official's", PSS_GOAL),
        ("cpu_per_room_min", "CPU per room-minute <= official's", 1.0),
    ):
        parts, oks = [], []
        for n in both:
            x, y = ours[n].get(key, float("nan")), theirs[n].get(key, float("nan"))
            ok_n = x <= y / goal
            oks.append(ok_n)
            bang = "!" if ours[n].get("harness_overloaded") else ""
            parts.append(f"N={n}{bang}: {x:.2f} vs {y:.2f}{'' if ok_n else ' (missed)'}")
        print(
            f"  {label} ({'; '.join(parts) or 'official not run'}): "
            f"{verdict(all(oks) if oks else None)}"
        )


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--rooms", default="1,10,25,50", help="comma-separated room counts")
    ap.add_argument("--duration", type=float, default=40.0, help="measured seconds per N")
    ap.add_argument("--period", type=float, default=6.0, help="seconds between utterances")
    ap.add_argument("--only", choices=["syncagents", "official"], default=None)
    ap.add_argument("--json", action="store_true", help="print one JSON document at the end")
    ap.add_argument("--logs", default=None, help="keep worker/user logs in this folder")
    args = ap.parse_args()
    ns = [int(x) for x in args.rooms.split(",") if x.strip()]

    impls = {"syncagents": sys.executable}
    if args.only != "syncagents":
        python = official_python()
        if python is not None:
            impls["official"] = python
    if args.only == "official":
        impls.pop("syncagents")
        if not impls:
            log("nothing to run")
            return
    results: dict[str, dict[int, dict[str, Any]]] = {impl: {} for impl in impls}
    t_run = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bench-rooms-") as tmp_name:
        tmp = Path(args.logs or tmp_name)
        tmp.mkdir(parents=True, exist_ok=True)
        clips = make_clips(tmp)
        for n in ns:
            for impl, python in impls.items():  # side by side for each N: same noise
                log(f"{impl}: {n} rooms ...")
                try:
                    r = run_phase(impl, python, n, args, clips, tmp)
                except (LiveKitServerError, RuntimeError, gevent.queue.Empty) as exc:
                    what = "no event in time" if isinstance(exc, gevent.queue.Empty) else exc
                    log(f"{impl}: {n} rooms failed: {what}")
                    continue
                results[impl][n] = r
                log(
                    f"  {impl} N={n}: replies {r['replies']}, missed {r['missed']} "
                    f"(warm-up {r['warmup_ok']} ok, {r['warmup_missed']} missed), "
                    f"p50 {r['p50']:.0f} ms, p95 {r['p95']:.0f} ms, "
                    f"CPU {r['cpu_per_room_min']:.2f} s/room-min, "
                    f"PSS {r.get('pss_per_room', float('nan')):.2f} MB/room"
                )
    print_table(results, ns)
    print_goals(results)
    print(
        f"\n(total {time.monotonic() - t_run:.0f} s; utterance every {args.period} s per room, "
        f"{args.duration} s measured per N; reply = end of user speech -> first agent frame "
        f"above -40 dBFS, missed = none within {REPLY_TIMEOUT} s)"
    )
    if args.json:
        print(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
