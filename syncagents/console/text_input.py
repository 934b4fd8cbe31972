"""Lines typed on stdin, for the console's text mode, read without holding the gevent hub.

The descriptor is waited on with gevent's cooperative ``select`` and read with ``os.read``
only once it is readable, so its blocking mode is left alone (the terminal is shared with the
shell). Regular files (``< messages.txt``) are always readable and are read directly.
"""

from __future__ import annotations

import collections
import os
import stat

import gevent
import gevent.event
import gevent.select

from .session import CHECK_S, Check

__all__ = ["LineReader"]


class LineReader:
    """Reads lines from ``fd`` in a greenlet; :meth:`next` hands them out in order.

    Blank lines are skipped; the end of input (EOF, or an error reading) ends the lines.
    """

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._lines: collections.deque[str] = collections.deque()
        self._changed = gevent.event.Event()
        self.eof = False
        self._greenlet = gevent.spawn(self._run)

    def _run(self) -> None:
        try:
            regular = stat.S_ISREG(os.fstat(self._fd).st_mode)
            pending = b""
            while True:
                if not regular:
                    gevent.select.select([self._fd], [], [])
                data = os.read(self._fd, 65536)
                if not data:
                    break
                *complete, pending = (pending + data).split(b"\n")
                self._add(complete)
            self._add([pending])
        except OSError:
            pass  # a closed or vanished stdin ends the input like EOF
        finally:
            self.eof = True
            self._changed.set()

    def _add(self, raw: list[bytes]) -> None:
        for line in raw:
            text = line.decode("utf-8", errors="replace").strip()
            if text:
                self._lines.append(text)
        self._changed.set()

    def next(self, check: Check) -> str | None:
        """The next line, waiting for one (``check`` is called meanwhile); None at the end."""
        while True:
            if self._lines:
                return self._lines.popleft()
            if self.eof:
                return None
            self._changed.clear()
            if not self._changed.wait(CHECK_S):
                check()

    def close(self) -> None:
        """Stop reading."""
        self._greenlet.kill(block=False)
