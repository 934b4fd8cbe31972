"""What the stop signals do once a command is exiting."""

from __future__ import annotations

import signal

__all__ = ["STOP_SIGNALS", "ignore_stop_signals"]

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def ignore_stop_signals() -> None:
    """From now on SIGTERM, SIGINT and SIGHUP are ignored: the command has stopped its work
    and is exiting (its last log lines, the bridge closing rooms, ``atexit``), which takes a
    bounded time. Without this, Python's default SIGINT handler would raise
    ``KeyboardInterrupt`` in the middle of that — a traceback, and an interpreter that ends
    by the signal instead of with the command's exit code. Ignored rather than logged: a
    signal handler must not take the logger's lock, which the interrupted code may hold."""
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
