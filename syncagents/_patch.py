"""The monkey-patch policy, applied by ``import syncagents``.

syncagents is blocking code on a gevent hub, so sockets, ``time.sleep`` and friends must be
cooperative before anything else runs. Users who patch themselves (or must not be patched)
set ``SYNCAGENTS_NO_PATCH=1``.
"""

from __future__ import annotations

import os
import sys
import warnings

# Modules gevent cannot fully patch once they were imported: objects created from them
# before patching (locks, sockets, thread-locals) stay blocking.
_LATE_SENSITIVE = ("ssl", "threading", "queue", "selectors", "subprocess", "asyncio")

_applied = False


def ensure_patched() -> None:
    """Run ``gevent.monkey.patch_all()`` once unless opted out or already done."""
    global _applied
    if _applied:
        return
    _applied = True
    if os.environ.get("SYNCAGENTS_NO_PATCH", "").strip() not in ("", "0"):
        return
    from gevent import monkey

    if monkey.is_module_patched("socket"):
        return  # the application patched before importing us: respect its choice
    early = [m for m in _LATE_SENSITIVE if m in sys.modules and m != "threading"]
    # threading is imported by the interpreter itself at start-up; gevent handles that case.
    with warnings.catch_warnings():
        # gevent warns about late ssl patching itself; we log one clear line instead.
        warnings.simplefilter("ignore")
        monkey.patch_all()
    if early:
        from loguru import logger

        logger.warning(
            "syncagents patched gevent after {} were imported; objects they created earlier "
            "may block the hub. Import syncagents first, or patch yourself and set "
            "SYNCAGENTS_NO_PATCH=1",
            ", ".join(early),
        )
