"""Queued runs (`multitask_strategy: "enqueue"`): the run is stored `pending` at once, and
a background task of the accepting worker starts it once it is the thread's oldest queued
run and the thread's lease is free (whichever worker's turn held it). Runs of a thread
thus run one at a time, in the order they came. A run still queued after
`ENQUEUE_WAIT_SECONDS` ends `timeout`; one cancelled while queued never starts. A queue
whose accepting worker shuts down or dies stays: a live worker's sweep starts its runs in
their turn (`run_recovery.py`)."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable

import asyncpg

from src.agent.memory.store import StorageUnavailableError
from src.api.admission import OverloadedError
from src.api.agent_server.run_book import RunBook
from src.api.errors import ApiError
from src.api.turn_leases import SessionBusyError
from src.api.turn_stream import Turn

logger = logging.getLogger("vera.runs")

ENQUEUE_WAIT_SECONDS = 600.0
# How often a queued run looks whether its turn came (the lease is a row: no event to await).
QUEUE_POLL_SECONDS = 0.1


class LeftQueue(Exception):
    """The queued run left its queue before it started (cancelled)."""


async def run_when_free(
    thread_id: uuid.UUID,
    run_id: uuid.UUID,
    runs: RunBook,
    start: Callable[[], Awaitable[Turn]],
    wait_seconds: float = ENQUEUE_WAIT_SECONDS,
) -> None:
    """Start queued run `run_id` with `start` once its turn comes (see the module)."""
    try:
        async with asyncio.timeout(wait_seconds):
            while not await _started(thread_id, run_id, runs, start):  # noqa: ASYNC110 (rows)
                await asyncio.sleep(QUEUE_POLL_SECONDS)
    except TimeoutError:
        if await runs.dequeue(run_id, "timeout"):
            logger.warning("queued run %s timed out after %g s", run_id, wait_seconds)
    except Exception as exc:  # claimed (`running`) or not, it will not run
        logger.error("queued run %s did not start", run_id, exc_info=exc)
        await runs.set_status(run_id, "error")


async def _started(
    thread_id: uuid.UUID, run_id: uuid.UUID, runs: RunBook, start: Callable[[], Awaitable[Turn]]
) -> bool:
    """One look: start the run if its turn came; true once it started or left its queue."""
    try:
        if await runs.first_queued(thread_id) != run_id:
            return (await runs.get(thread_id, run_id))["status"] != "pending"
    except (StorageUnavailableError, asyncpg.PostgresError) as exc:
        logger.warning("queued run %s: look failed (%s)", run_id, type(exc).__name__)
        return False
    except ApiError:  # deleted, with its thread or alone: it left its queue
        logger.info("queued run %s was deleted before it started", run_id)
        return True
    try:
        await start()
    except (SessionBusyError, OverloadedError):
        return False  # the thread (or this worker) is busy: look again
    except LeftQueue:
        return True  # cancelled just now
    except (StorageUnavailableError, asyncpg.PostgresError):
        # Not claimed yet: look again. Claimed, but the turn did not start: it will not run.
        if (await runs.get(thread_id, run_id))["status"] == "pending":
            return False
        raise
    return True
