"""Ports for the tests' servers."""

from __future__ import annotations

import socket


def free_port() -> int:
    """A local TCP port nobody listens on right now (bound, read, released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
