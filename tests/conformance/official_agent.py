"""A livekit-agents (official, asyncio) worker app, driven by environment variables.

Used by the conformance tests and by bench/dispatch.py. Jobs never join a room: the
entrypoint appends ``<job id> <time.time()>`` to ``$MARK_FILE`` as soon as it runs, then
sleeps ``float(job.metadata)`` seconds and shuts the job down (or raises when the metadata is
``raise``).

Run as ``python official_agent.py start`` with LIVEKIT_URL / LIVEKIT_API_KEY /
LIVEKIT_API_SECRET set.
"""

from __future__ import annotations

import asyncio
import os
import time

from livekit.agents import JobContext, WorkerOptions, cli


async def entrypoint(ctx: JobContext) -> None:
    mark = os.environ.get("MARK_FILE")
    if mark:
        with open(mark, "a") as f:
            f.write(f"{ctx.job.id} {time.time()}\n")
    if ctx.job.metadata == "raise":
        raise RuntimeError("entrypoint failed on purpose")
    await asyncio.sleep(float(ctx.job.metadata or 0))
    ctx.shutdown("done")  # a job that joins no room ends only by shutdown() here


def load() -> float:
    return float(os.environ.get("OFFICIAL_LOAD", "0"))


if __name__ == "__main__":
    cli.run_app(
        WorkerOptions(
            entrypoint_fnc=entrypoint,
            load_fnc=load,
            agent_name=os.environ.get("OFFICIAL_AGENT_NAME", ""),
            port=int(os.environ.get("OFFICIAL_HEALTH_PORT", "0")),
            num_idle_processes=int(os.environ.get("OFFICIAL_IDLE_PROCESSES", "2")),
        )
    )
