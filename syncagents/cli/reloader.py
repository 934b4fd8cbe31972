"""``syncagents dev``: run the worker in a child process and restart it when a ``.py`` file
under the app's folder changes (mtimes polled from a greenlet: no extra dependency, and a
poll every half second costs nothing next to a developer's edit cadence)."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import gevent
import gevent.event
from loguru import logger

__all__ = ["Reloader", "snapshot"]

_SKIP_DIRS = {"__pycache__", "node_modules", "site-packages", "venv", ".venv", "build", "dist"}


def snapshot(folder: Path) -> dict[str, float]:
    """``{path: mtime}`` of every ``.py`` file under ``folder`` (hidden and venv dirs skipped)."""
    found: dict[str, float] = {}
    for root, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".") and d not in _SKIP_DIRS]
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(root, name)
                try:
                    found[path] = os.stat(path).st_mtime
                except OSError:
                    pass  # removed between listing and stat: the next poll sees it
    return found


def _changed(before: dict[str, float], after: dict[str, float]) -> list[str]:
    return sorted(p for p in set(before) | set(after) if before.get(p) != after.get(p))


class Reloader:
    """Run the worker command ``argv`` as a child process; restart it when a ``.py`` file changes.

    ``folder`` is polled every ``poll_interval`` seconds; a stopped child gets SIGTERM and is killed
    if it has not exited within ``stop_timeout`` seconds. ``restarts`` counts the restarts so far.
    """

    def __init__(
        self,
        argv: list[str],
        folder: Path,
        *,
        env: dict[str, str],
        poll_interval: float = 0.5,
        stop_timeout: float = 10.0,
    ) -> None:
        self.argv = argv
        self.folder = folder
        self.env = env
        self.poll_interval = poll_interval
        self.stop_timeout = stop_timeout
        self.restarts = 0
        self._stopping = gevent.event.Event()
        self._proc: subprocess.Popen[bytes] | None = None

    def run(self) -> int:
        """Watch and restart until SIGTERM or SIGINT; return the last child's exit code.

        Blocks the calling greenlet. A child that exits on its own is restarted only after the next
        change. A signal is forwarded to the child as one SIGTERM (it drains) and ends the loop.
        """
        handlers = [
            gevent.signal_handler(sig, self._on_signal) for sig in (signal.SIGTERM, signal.SIGINT)
        ]
        logger.info("dev mode: watching {} for changes", self.folder)
        code = 0
        try:
            while not self._stopping.is_set():
                files = snapshot(self.folder)
                # own session: Ctrl-C reaches only the reloader, which forwards one SIGTERM
                self._proc = subprocess.Popen(self.argv, env=self.env, start_new_session=True)
                code, changed = self._watch(self._proc, files)
                if self._stopping.is_set():
                    break
                if not changed:
                    logger.warning(
                        "worker exited with code {}; waiting for a change to restart", code
                    )
                    changed = self._wait_for_change(files)
                    if not changed:
                        break
                logger.info("{} changed; restarting the worker", os.path.relpath(changed[0]))
                self.restarts += 1
        finally:
            for h in handlers:
                h.cancel()
            self._stop_child()
        return code

    def _on_signal(self) -> None:
        self._stopping.set()
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)  # the child drains and exits on its own

    def _watch(
        self, proc: subprocess.Popen[bytes], files: dict[str, float]
    ) -> tuple[int, list[str]]:
        """Until the child exits (its code, no change) or a file changes (child stopped)."""
        waiter = gevent.spawn(proc.wait)
        try:
            while True:
                waiter.join(timeout=self.poll_interval)
                if waiter.ready():
                    return int(waiter.value), []
                if self._stopping.is_set():
                    continue  # wait for the drained child
                changed = _changed(files, snapshot(self.folder))
                if changed:
                    self._stop_child()
                    return int(proc.returncode or 0), changed
        finally:
            waiter.kill()

    def _wait_for_change(self, files: dict[str, float]) -> list[str]:
        while not self._stopping.wait(self.poll_interval):
            changed = _changed(files, snapshot(self.folder))
            if changed:
                return changed
        return []

    def _stop_child(self) -> None:
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=self.stop_timeout)
        except subprocess.TimeoutExpired:
            logger.warning("worker did not stop within {:.0f} s; killing it", self.stop_timeout)
            proc.kill()
            proc.wait()
