"""The monkey-patch policy, applied by ``import syncagents``.

syncagents is blocking code on a gevent hub, so sockets, ``time.sleep`` and friends must be
cooperative before anything else runs. Users who patch themselves (or must not be patched)
set ``SYNCAGENTS_NO_PATCH=1``.

Patching late is usually fine. ``patch_all`` replaces the functions and classes *in* their
modules (``socket.socket``, ``time.sleep``, ``ssl.SSLContext``, ...), so a module imported
earlier that calls ``socket.create_connection(...)`` or ``time.sleep(...)`` through the module
gets the cooperative version at call time; gevent also repairs the standard library's own
early references (``selectors.PollSelector``, ``ssl``'s socket base class, ``subprocess``).
What stays broken is a *third-party* module that bound an original by name before the patch
(``from ssl import SSLContext``, ``from time import sleep``, ``class S(socket.socket)``): it
keeps calling the blocking (or, for ``SSLContext``, recursing) original. Only those are
reported, each with what breaks (tests/test_runtime.py checks this module by module):

* ``urllib3`` (so ``requests``) binds ``ssl.SSLContext``: every HTTPS request then fails with
  ``RecursionError`` (gevent issue 1016); plain HTTP stays cooperative.
* ``loguru``, ``asyncio``, ``ssl``, ``livekit``, ``aiohttp``, ``websocket``, ``click``,
  ``numpy``, ``av`` imported first are fine: they use module attributes, or hold the name only
  for ``isinstance`` checks and annotations (``aiohttp``, ``jwt``), or hold native locks and
  thread-locals that are never waited on across a greenlet switch.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Iterable
from types import ModuleType, SimpleNamespace
from typing import Any

# module whose originals matter -> what a module still holding one gets
_CONSEQUENCE = {
    "socket": "its sockets and DNS lookups block every greenlet",
    "select": "its waits block every greenlet",
    "selectors": "its waits block every greenlet",
    "time": "its sleeps block every greenlet",
    "subprocess": "its child-process waits block every greenlet",
    "ssl": "its TLS sockets block every greenlet",
}
# ssl.SSLContext is worse than blocking: the original class's property setters call
# ``super(SSLContext, SSLContext)`` with the module global, which is gevent's subclass now.
_SSL_CONTEXT = "HTTPS through it fails with RecursionError"

# Holders verified harmless: aiohttp and jwt keep ssl.SSLContext only for isinstance checks
# and annotations and create contexts through ``ssl.SSLContext(...)`` (the patched class);
# pytest's ``_pytest.timing.sleep`` serves only its own clock helpers, never a test's code.
_HARMLESS = frozenset({"aiohttp", "jwt", "_pytest"})

_applied = False


def ensure_patched() -> None:
    """Run ``gevent.monkey.patch_all()`` once unless opted out or already done; log one
    WARNING naming the modules that captured unpatched originals before it ran. Once threads
    are patched (by us or by the application), loguru's locks are made OS locks."""
    global _applied
    if _applied:
        return
    _applied = True
    _patch_all()
    monkey = sys.modules.get("gevent.monkey")
    if monkey is not None and monkey.is_module_patched("threading"):
        loguru_uses_os_locks()


def _patch_all() -> None:
    if os.environ.get("SYNCAGENTS_NO_PATCH", "").strip() not in ("", "0"):
        return
    from gevent import monkey

    if monkey.is_module_patched("socket"):
        return  # the application patched before importing us: respect its choice
    imported_before = list(sys.modules.items())
    with warnings.catch_warnings():
        # gevent warns whenever ssl was imported first, broken or not; we log one precise
        # line instead, only for what breaks
        warnings.simplefilter("ignore")
        monkey.patch_all()
    stale = stale_references(imported_before, monkey.saved)
    if stale:
        from loguru import logger

        logger.warning(
            "gevent was patched too late for {}. Import syncagents before them (first in the "
            "file), or run gevent.monkey.patch_all() yourself first and set "
            "SYNCAGENTS_NO_PATCH=1",
            "; ".join(stale),
        )


def loguru_uses_os_locks() -> None:
    """Make every lock loguru creates from now on an OS lock (idempotent). ``import syncagents``
    does it right after patching, before ``runtime`` replaces loguru's default stderr handler
    (see ``log.quiet_default_handler``), so that handler has one too.

    Why: log calls come from native threads (the bridge loop, livekit's callbacks,
    ``to_thread`` workers), and loguru takes all its handler locks in ``os.fork``'s
    before-hook, from the forking greenlet. With gevent's locks there, a ``subprocess.run``
    while a native thread logged made the hook raise ``LoopExit`` or release a lock it never
    took (measured: about one fork in five under a logging thread), and a child could hang
    before ``exec``, so that ``subprocess.run`` never returned.
    """
    from loguru import _locks_machinery

    from ._bridge import real_lock
    from ._internals import check_loguru

    check_loguru(_locks_machinery)
    _locks_machinery.threading = SimpleNamespace(Lock=real_lock)  # type: ignore[assignment]


def stale_references(
    modules: Iterable[tuple[str, Any]], saved: dict[str, dict[str, Any]]
) -> list[str]:
    """``"<package> (holds the unpatched <module.name>: <consequence>)"`` for every
    third-party package among ``modules`` whose globals hold an original that gevent replaced
    (``saved`` is ``gevent.monkey.saved``), or subclass one. The standard library is left
    out: gevent repairs its references itself (the leftovers, ``pty`` and ``ftplib``, are
    harmless)."""
    originals: dict[int, str] = {}
    for module_name in _CONSEQUENCE:
        module = sys.modules.get(module_name)
        for attr, value in saved.get(module_name, {}).items():
            if callable(value) and getattr(module, attr, None) is not value:
                originals[id(value)] = f"{module_name}.{attr}"
    found: dict[str, dict[str, str]] = {}  # package -> original -> consequence
    seen: set[int] = set()
    stdlib = sys.stdlib_module_names
    for name, module in modules:
        top = name.partition(".")[0]
        if (
            top in stdlib
            or top in _HARMLESS
            or top in ("gevent", "greenlet", "syncagents")
            or not issubclass(type(module), ModuleType)  # isinstance would load a lazy one
            or id(module) in seen  # the same module under two names (requests.packages.*)
        ):
            continue
        seen.add(id(module))
        # not getattr(): a lazily loaded module (importlib.util.LazyLoader) would load now
        namespace = object.__getattribute__(module, "__dict__")
        if not isinstance(namespace, dict):
            continue
        for value in list(namespace.values()):
            # ids are safe keys: every original stays alive in gevent's ``saved``
            what = originals.get(id(value))
            if what is None and isinstance(value, type) and vars(value).get("__module__") == name:
                # a class defined here on an original base (``class S(socket.socket)``)
                bases = [originals[id(b)] for b in value.__bases__ if id(b) in originals]
                what = bases[0] if bases else None
            if what is None:
                continue
            if what == "ssl.SSLContext":
                found.setdefault(top, {})[what] = _SSL_CONTEXT
            else:
                found.setdefault(top, {})[what] = _CONSEQUENCE[what.partition(".")[0]]
    lines = []
    for package, held in sorted(found.items()):
        consequences = ", ".join(dict.fromkeys(held.values()))
        lines.append(f"{package} (holds the unpatched {', '.join(sorted(held))}: {consequences})")
    return lines
