"""`RunBook`: the `thread_runs` rows of the Agent Server door (one per run of a thread, in the
fields of `langgraph_sdk`'s `Run`); what a run does is the turn runner's (`run_play.py`)."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

from src.agent.memory.jsonb import dumps_jsonb, loads_jsonb
from src.agent.memory.store import PostgresMemoryStore
from src.api.agent_server import sql
from src.api.errors import ApiError


def run_of(row: asyncpg.Record) -> dict[str, Any]:
    run = dict(row)
    run["metadata"] = loads_jsonb(row["metadata"])
    run["kwargs"] = loads_jsonb(row["kwargs"])
    return run


def unknown_run(run_id: uuid.UUID) -> ApiError:
    return ApiError(404, "not_found", f"Run {run_id} not found in this thread.")


class RunBook:
    """Records runs and their status; lists and reads them by thread."""

    def __init__(self, store: PostgresMemoryStore) -> None:
        self.store = store

    async def insert(
        self,
        run_id: uuid.UUID,
        thread_id: uuid.UUID,
        assistant_id: uuid.UUID,
        metadata: dict[str, Any],
        kwargs: dict[str, Any],
        multitask_strategy: str,
    ) -> dict[str, Any]:
        args = (
            run_id,
            thread_id,
            assistant_id,
            dumps_jsonb(metadata),
            dumps_jsonb(kwargs),
            multitask_strategy,
        )
        return run_of(await self.store.run(lambda conn: conn.fetchrow(sql.INSERT_RUN, *args)))

    async def set_status(self, run_id: uuid.UUID, status: str) -> None:
        await self.store.run(lambda conn: conn.execute(sql.SET_RUN_STATUS, run_id, status))

    async def end(
        self, thread_id: uuid.UUID, run_id: uuid.UUID, lease_id: uuid.UUID, status: str
    ) -> None:
        """Record how the run ended and release its lease of the thread, at once (nothing is
        recorded by an attempt that lost the run to another: `lease_id` is not its own)."""
        args = (thread_id, run_id, status, lease_id)
        await self.store.run(lambda conn: conn.execute(sql.END_RUN, *args))

    async def first_queued(self, thread_id: uuid.UUID) -> uuid.UUID | None:
        """The thread's oldest run waiting in its queue."""
        return await self.store.run(lambda conn: conn.fetchval(sql.FIRST_QUEUED_RUN, thread_id))

    async def dequeue(self, run_id: uuid.UUID, status: str) -> bool:
        """Take queued run `run_id` out of its queue with `status`; false when it left it."""
        row = await self.store.run(lambda conn: conn.fetchval(sql.DEQUEUE_RUN, run_id, status))
        return row is not None

    async def mark_rollback(self, run_id: uuid.UUID) -> None:
        await self.store.run(lambda conn: conn.execute(sql.MARK_ROLLBACK, run_id))

    async def rollback_asked(self, run_id: uuid.UUID) -> bool:
        return bool(await self.store.run(lambda conn: conn.fetchval(sql.ROLLBACK_ASKED, run_id)))

    async def drop(self, thread_id: uuid.UUID, run_id: uuid.UUID, lease_id: uuid.UUID) -> None:
        """Delete the run's row and release its lease of the thread, at once."""
        args = (thread_id, run_id, lease_id)
        await self.store.run(lambda conn: conn.execute(sql.DROP_RUN, *args))

    async def active(self, thread_id: uuid.UUID) -> list[asyncpg.Record]:
        """The thread's runs that have not ended (queued, or started), oldest first."""
        return list(await self.store.run(lambda conn: conn.fetch(sql.ACTIVE_RUNS, thread_id)))

    async def orphaned(self, limit: int) -> list[asyncpg.Record]:
        """Runs that started, have not ended and whose thread nothing holds."""
        return list(await self.store.run(lambda conn: conn.fetch(sql.ORPHANED_RUNS, limit)))

    async def reclaim(self, run_id: uuid.UUID, seen: uuid.UUID, lease_id: uuid.UUID) -> int | None:
        """Take run `run_id` over from its attempt under lease `seen` for one under
        `lease_id`: the new attempt's number, `None` when another took it first."""
        args = (run_id, seen, lease_id)
        return await self.store.run(lambda conn: conn.fetchval(sql.RECLAIM_RUN, *args))

    async def queue_heads(self, limit: int) -> list[asyncpg.Record]:
        """The first queued run of each thread that could start it now."""
        return list(await self.store.run(lambda conn: conn.fetch(sql.QUEUE_HEADS, limit)))

    async def get(self, thread_id: uuid.UUID, run_id: uuid.UUID) -> dict[str, Any]:
        row = await self.store.run(lambda conn: conn.fetchrow(sql.SELECT_RUN, thread_id, run_id))
        if row is None:
            raise unknown_run(run_id)
        return run_of(row)

    async def list(
        self, thread_id: uuid.UUID, limit: int, offset: int, status: str | None
    ) -> list[dict[str, Any]]:
        args = (thread_id, status, limit, offset)
        return [run_of(r) for r in await self.store.run(lambda c: c.fetch(sql.LIST_RUNS, *args))]
