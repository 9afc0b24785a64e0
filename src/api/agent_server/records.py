"""`ThreadBook`: threads of the Agent Server API as Vera sessions. A thread's row is its
session's owner row (so ownership, listing, TTL and deletion are the sessions'), its values
the graph's state read through the checkpointer."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
from langchain_core.runnables import RunnableConfig
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import StateSnapshot

from src.agent.memory.jsonb import dumps_jsonb, loads_jsonb
from src.agent.memory.store import PostgresMemoryStore
from src.api.agent_server import sql
from src.api.agent_server.graphs import IMPLIED_METADATA
from src.api.agent_server.shapes import TTL, ThreadSearch
from src.api.agent_server.snapshots import as_json, thread_interrupts
from src.api.errors import ApiError
from src.api.security import DEFAULT_PRINCIPAL, Principal
from src.api.session_directory import SessionDirectory, not_found
from src.api.state_reads import readable_state

_IMPLIED = dumps_jsonb(IMPLIED_METADATA)
# What a copy's answer holds (as `langgraph dev`'s: no values yet).
COPY_FIELDS = frozenset(
    {"thread_id", "created_at", "updated_at", "state_updated_at", "metadata", "status", "config"}
)


def thread_config(thread_id: uuid.UUID, checkpoint_id: str | None = None) -> RunnableConfig:
    configurable: dict[str, Any] = {"thread_id": str(thread_id), "checkpoint_ns": ""}
    if checkpoint_id is not None:
        configurable["checkpoint_id"] = checkpoint_id
    return {"configurable": configurable}


def unreadable(error: Exception) -> str:
    """A thread's `error` when its latest checkpoint does not read."""
    text = str(error).split("\n", 1)[0][:300]
    return (
        f"The thread's latest checkpoint holds writes its state refuses ({text}); "
        "its values are shown as before them."
    )


def thread_exists(thread_id: uuid.UUID) -> ApiError:
    return ApiError(
        409,
        "thread_exists",
        f"Thread {thread_id} already exists; send if_exists=do_nothing to get it instead.",
    )


def ttl_minutes(ttl: TTL | None) -> float | None:
    return None if ttl is None else ttl.ttl


def shown_config(stored: bool, run_config: str | None) -> dict[str, Any]:
    """A thread's `config` as langgraph dev shows it: `{}` until it has run, then its last
    run's config without the run's own parts (`configurable`, `metadata`)."""
    if not stored and run_config is None:
        return {}
    config = loads_jsonb(run_config) if run_config is not None else {}
    kept = {key: value for key, value in (config or {}).items() if key != "metadata"}
    return {**kept, "configurable": {}}


class ThreadBook:
    """Creates, reads, lists, changes and copies threads (deletion: `SessionEraser`)."""

    def __init__(
        self, store: PostgresMemoryStore, graph: CompiledStateGraph, directory: SessionDirectory
    ) -> None:
        self.store = store
        self.graph = graph
        self.directory = directory

    async def create(
        self,
        principal: Principal,
        thread_id: uuid.UUID,
        metadata: dict[str, Any],
        ttl: TTL | None,
        if_exists: str,
    ) -> dict[str, Any]:
        """A new thread of the caller's; an existing one of theirs is a 409
        (`if_exists=raise`) or returned as it is; someone else's is a 404."""
        args = (
            thread_id,
            principal.name,
            principal.user_id,
            dumps_jsonb(metadata),
            ttl_minutes(ttl),
        )
        created = await self.store.run(lambda conn: conn.fetchval(sql.CREATE_THREAD, *args))
        if created is None:
            await self.directory.require(thread_id, principal)
            if if_exists == "raise":
                raise thread_exists(thread_id)
        return await self.thread(thread_id)

    async def require(self, thread_id: uuid.UUID, principal: Principal) -> None:
        """404 unless the caller owns the thread (the same answer as for an unknown id); a
        thread written without the API (the default principal's) gets its owner row, which
        holds its metadata."""
        await self.directory.require(thread_id, principal)
        if (principal.name, principal.user_id) == (DEFAULT_PRINCIPAL, ""):
            await self.directory.adopt(thread_id)

    async def thread(
        self, thread_id: uuid.UUID, fields: frozenset[str] | None = None
    ) -> dict[str, Any]:
        """The thread's answer (an owned one: `require` first)."""
        row = await self.store.run(
            lambda conn: conn.fetchrow(sql.SELECT_THREAD, thread_id, _IMPLIED)
        )
        if row is None:
            raise not_found(thread_id)
        return await self._answer(row, fields)

    async def search(self, principal: Principal, query: ThreadSearch) -> list[dict[str, Any]]:
        """A page of the caller's threads, newest first unless `query` sorts otherwise."""
        await self.directory.adopt_unowned(principal)
        statement = sql.SEARCH_THREADS[(query.sort_by or "updated_at", query.sort_order or "desc")]
        args = (
            _IMPLIED,
            principal.name,
            principal.user_id,
            None if query.metadata is None else dumps_jsonb(query.metadata),
            query.ids,
            query.limit,
            query.offset,
        )
        rows = await self.store.run(lambda conn: conn.fetch(statement, *args))
        fields = frozenset(query.select) if query.select else None
        return list(await asyncio.gather(*(self._answer(row, fields) for row in rows)))

    async def update(
        self, thread_id: uuid.UUID, metadata: dict[str, Any] | None, ttl: TTL | None
    ) -> dict[str, Any]:
        """Merge `metadata` into the thread's (an owned one) and set its TTL when given."""
        args = (thread_id, dumps_jsonb(metadata or {}), ttl is not None, ttl_minutes(ttl))
        if await self.store.run(lambda conn: conn.fetchval(sql.UPDATE_THREAD, *args)) is None:
            raise not_found(thread_id)
        return await self.thread(thread_id)

    async def copy(self, thread_id: uuid.UUID) -> dict[str, Any]:
        """A new thread with every checkpoint of this one (owned), its owner and metadata."""
        target = uuid.uuid4()
        claimed = await self.store.run(
            lambda conn: conn.fetchval(sql.COPY_THREAD_OWNER, thread_id, target)
        )
        if claimed is None:
            raise not_found(thread_id)
        try:
            await self.graph.checkpointer.acopy_thread(str(thread_id), str(target))  # type: ignore[union-attr]
        except BaseException:
            await asyncio.shield(
                self.store.run(lambda conn: conn.execute(sql.DROP_BARE_OWNER, target))
            )
            raise
        return await self.thread(target, COPY_FIELDS)

    async def state(
        self, thread_id: uuid.UUID, checkpoint_id: str | None = None
    ) -> tuple[StateSnapshot, Exception | None]:
        return await readable_state(self.graph, thread_config(thread_id, checkpoint_id))

    async def _answer(self, row: asyncpg.Record, fields: frozenset[str] | None) -> dict[str, Any]:
        answer: dict[str, Any] = {
            "thread_id": row["session_id"],
            "created_at": row["created_at"],
            "updated_at": row["updated_at"],
            "state_updated_at": row["state_updated_at"],
            "metadata": loads_jsonb(row["metadata"]),
            "status": "busy" if row["busy"] else "idle",
            "config": shown_config(row["stored"], row["last_run_config"]),
            "values": None,
        }
        if row["stored"] and (fields is None or fields & {"values", "status", "interrupts"}):
            snapshot, error = await self.state(row["session_id"])
            interrupts = thread_interrupts(snapshot)
            # A run that paused at interrupt_before/after leaves steps to run, no interrupt.
            paused = bool(snapshot.next) and row["last_run_status"] == "interrupted"
            if (interrupts or paused) and not row["busy"]:
                answer["status"] = "interrupted"
            answer |= {"values": as_json(snapshot.values), "error": None, "interrupts": interrupts}
            if error is not None:
                answer |= {"status": "error", "error": unreadable(error)}
        if fields is not None:
            answer = {key: value for key, value in answer.items() if key in fields}
        return answer
