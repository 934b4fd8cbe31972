"""The smallest worker: plain blocking Python, no CLI.

    LIVEKIT_URL=ws://localhost:7880 LIVEKIT_API_KEY=... LIVEKIT_API_SECRET=... \
        python examples/minimal_worker.py
"""

from __future__ import annotations

import syncagents
from syncagents import JobContext, Worker, WorkerOptions
from syncagents.log import logger, setup_logging
from syncagents.worker import WorkerError


def entrypoint(ctx: JobContext) -> None:
    ctx.connect()
    logger.info("joined room {}", ctx.room.name)
    participant = ctx.wait_for_participant(timeout=60)
    logger.info("{} is here", participant.identity)
    ctx.room.local_participant.publish_data(f"hello {participant.identity}", topic="greeting")


if __name__ == "__main__":
    setup_logging("INFO")
    syncagents.runtime.enable_hub_block_detection(100)
    try:
        Worker(WorkerOptions(entrypoint_fnc=entrypoint)).run()
    except WorkerError as exc:  # missing settings, rejected key, unreachable server
        logger.error("{}", exc)  # one line that says what is wrong; a traceback would not help
        raise SystemExit(1) from None
