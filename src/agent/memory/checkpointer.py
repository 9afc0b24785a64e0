"""`ConversationCheckpointer`: LangGraph's checkpoint contract on asyncpg.

Tables (see `migrations/`): `conversations` (one row per session; its `messages` array is
the readable transcript of the root `messages` channel, current at the end of each run),
`conversation_messages` (messages of other branches, and of a run still going),
`transcript_heads`, `checkpoints`, `checkpoint_blobs` (other channel values, once per
version), `checkpoint_writes` and `turn_leases` (`leases.py`). There is no saver-wide lock:
every call takes its own pooled connection, and writers of one session serialize on that
session's `conversations` row for one statement (or, when the cached log is stale, one
short transaction that catches it up under that lock and runs the same statement: `put.py`,
`functions/vera_put_checkpoint.sql`). How a checkpoint becomes rows and back is `rows.py`;
the message log and its cache are `session_log.py` and `message_log.py`; a `DeltaChannel`'s
history is read by `delta_history.py`; whole-thread operations (delete, copy, prune,
branches) are at the end of the class, their SQL work in `thread_ops.py` and
`branch_ops.py`; checkpoint retention (`aretain`, `aretain_due`) is `retention.py` and
`retention_ops.py`; the sync methods are in `sync_bridge.py`.
"""

from __future__ import annotations

import asyncio
import functools
import random
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any, TypeVar

import asyncpg
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    DeltaChannelHistory,
)
from langgraph.checkpoint.serde.base import SerializerProtocol

from src.agent.memory import branch_ops, delta_history, retention_ops, sql, thread_ops
from src.agent.memory.fencing import LEASE_CONFIG_KEY, as_fencing_error, lease_of
from src.agent.memory.message_log import DEFAULT_CACHE_MAX_BYTES, MessageLogCache
from src.agent.memory.put import CheckpointPut, SessionWriters, run_of
from src.agent.memory.retention import RetentionPolicy
from src.agent.memory.rows import (
    TupleBuilder,
    encode_checkpoint,
    encode_writes,
    run_goes_on,
)
from src.agent.memory.store import PostgresMemoryStore
from src.agent.memory.sync_bridge import SyncBridge
from src.agent.memory.threads import session_id_for

T = TypeVar("T")
_PAGE_SIZE = 100


class ConversationCheckpointer(SyncBridge):
    """Async PostgreSQL checkpointer whose root `messages` channel is the transcript."""

    def __init__(
        self,
        store: PostgresMemoryStore,
        *,
        serde: SerializerProtocol | None = None,
        transcript_channel: str = "messages",
        cache_max_bytes: int | None = None,
    ) -> None:
        """`cache_max_bytes` bounds the in-process copy of recent sessions' messages
        (estimated bytes; default: the store's `cache_max_bytes`, 64 MiB unless set)."""
        super().__init__(serde=serde)
        self.store = store
        self.transcript_channel = transcript_channel
        if cache_max_bytes is None:
            cache_max_bytes = getattr(store, "cache_max_bytes", DEFAULT_CACHE_MAX_BYTES)
        self.message_logs = MessageLogCache(self.serde, max_bytes=cache_max_bytes)
        self.writers = SessionWriters()
        try:
            self.loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            self.loop = None

    @classmethod
    @asynccontextmanager
    async def from_dsn(
        cls,
        dsn: str,
        *,
        min_size: int = 5,
        max_size: int = 20,
        statement_cache: bool = True,
        serde: SerializerProtocol | None = None,
        **store_options: Any,
    ) -> AsyncIterator[ConversationCheckpointer]:
        """A checkpointer on a new pool to `dsn`, with the schema created or upgraded;
        leaving the block closes the pool.

        `statement_cache=False` behind PgBouncer-style poolers (transaction mode). Other
        keywords go to `PostgresMemoryStore` (`connect_timeout`, `command_timeout`,
        `embedded_dir`, `database`, `extra_migrations`, `cache_max_bytes`: the bound of the
        in-process message cache).

            async with ConversationCheckpointer.from_dsn(dsn) as checkpointer:
                graph = builder.compile(checkpointer=checkpointer)
        """
        store = PostgresMemoryStore(
            dsn,
            min_size=min_size,
            max_size=max_size,
            statement_cache=statement_cache,
            **store_options,
        )
        try:
            await store.initialize()
            yield cls(store, serde=serde)
        finally:
            await store.close()

    @classmethod
    @asynccontextmanager
    async def from_pool(
        cls,
        pool: asyncpg.Pool,
        *,
        serde: SerializerProtocol | None = None,
        cache_max_bytes: int | None = None,
        **store_options: Any,
    ) -> AsyncIterator[ConversationCheckpointer]:
        """A checkpointer on an asyncpg pool you own, with the schema created or upgraded;
        the pool stays open when the block ends."""
        store = PostgresMemoryStore.from_pool(pool, **store_options)
        try:
            await store.initialize()
            yield cls(store, serde=serde, cache_max_bytes=cache_max_bytes)
        finally:
            await store.close()

    async def setup(self) -> None:
        """Create or upgrade the schema (same as `store.initialize()`)."""
        await self.store.initialize()

    async def _run(self, fn: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        if self.loop is None:
            self.loop = asyncio.get_running_loop()
        try:
            return await self.store.run(fn)
        except asyncpg.PostgresError as exc:
            fenced = as_fencing_error(exc)
            if fenced is None:
                raise
            raise fenced from exc

    # -- reads -----------------------------------------------------------------------

    def _builder(self) -> TupleBuilder:
        return TupleBuilder(self.serde, self.message_logs, self.get_next_version)

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        return await self._run(lambda conn: self._builder().read(conn, config))

    async def aget_delta_channel_history(
        self, *, config: RunnableConfig, channels: Sequence[str]
    ) -> Mapping[str, DeltaChannelHistory]:
        """The writes and seed of each `DeltaChannel` (`delta_history.py`), read on one
        connection with one builder: messages the ancestors share decode once."""

        async def walk(conn: asyncpg.Connection) -> Mapping[str, DeltaChannelHistory]:
            builder = self._builder()
            return await delta_history.channel_history(
                lambda cfg: builder.read(conn, cfg), config, channels
            )

        return await self._run(walk)

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        """Checkpoints newest first, fetched page by page (no connection held between)."""
        remaining = limit
        page = sql.ListPage.of(config, filter, before, _PAGE_SIZE)
        builder = self._builder()  # one per call: shared messages
        while remaining is None or remaining > 0:
            page = replace(
                page, size=_PAGE_SIZE if remaining is None else min(_PAGE_SIZE, remaining)
            )
            query, args = sql.list_query(page)

            async def fetch(
                conn: asyncpg.Connection, query: str = query, args: list[Any] = args
            ) -> list[asyncpg.Record]:
                rows: list[asyncpg.Record] = await conn.fetch(query, *args)
                await builder.load(conn, rows)
                return rows

            rows = await self._run(fetch)
            for row in rows:
                yield builder.build(row)
            if len(rows) < page.size:
                return
            last = rows[-1]
            cursor = (last["checkpoint_id"], last["session_id"], last["checkpoint_ns"])
            page = replace(page, cursor=cursor)
            if remaining is not None:
                remaining -= len(rows)

    # -- writes ----------------------------------------------------------------------

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        conf = config["configurable"]
        thread_id = str(conf["thread_id"])
        ns = conf.get("checkpoint_ns", "")
        sid, parent = session_id_for(thread_id), conf.get("checkpoint_id")
        rows = encode_checkpoint(
            config, checkpoint, metadata, new_versions, self.serde, self.transcript_channel
        )
        lease = lease_of(conf)
        run = run_of(conf) if ns == "" and lease is None else None  # fenced otherwise
        await self._create_row(sid, lease)
        async with self.writers.lock(sid):
            put = CheckpointPut(
                session_id=sid,
                checkpoint_ns=ns,
                checkpoint_id=checkpoint["id"],
                parent_checkpoint_id=parent,
                thread_id=thread_id,
                rows=rows,
                transcript_channel=self.transcript_channel,
                lease=lease,
                run_goes_on=rows.transcript is not None and run_goes_on(checkpoint, metadata),
                run_parent=self.writers.run_parent(sid, run, parent),
            )
            await self._run(lambda conn: put.store(conn, self.message_logs))
            if ns == "":
                self.writers.wrote(sid, run, checkpoint["id"])
        return {
            "configurable": {
                "thread_id": thread_id,
                "checkpoint_ns": ns,
                "checkpoint_id": checkpoint["id"],
            }
        }

    async def _create_row(self, sid: uuid.UUID, lease: uuid.UUID | None) -> None:
        if not self.writers.has_row(sid):
            await self._run(
                lambda conn: self.writers.create_row(conn, sid, lease, self.message_logs)
            )

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        if not writes:
            return
        conf = config["configurable"]
        sid = session_id_for(conf["thread_id"])
        rows = encode_writes(writes, self.serde)
        await self._create_row(sid, lease_of(conf))
        args = sql.PUT_WRITES.args(
            session_id=sid,
            checkpoint_ns=conf.get("checkpoint_ns", ""),
            checkpoint_id=conf["checkpoint_id"],
            task_id=task_id,
            task_path=task_path,
            idxs=rows.idxs,
            channels=rows.channels,
            types=rows.types,
            blobs=rows.blobs,
            replace=rows.replace,
            lease=lease_of(conf),
            run_stops=rows.run_stops,
        )

        async def write(conn: asyncpg.Connection) -> None:
            row = await conn.fetchrow(sql.PUT_WRITES.text, *args)
            if row["created"]:  # these writes came first: the new conversation is empty
                self.message_logs.seed(sid, row["conversation_id"])

        await self._run(write)

    # -- whole threads: delete, delete by run, branches, copy, prune (`thread_ops.py`) --

    async def adelete_thread(self, thread_id: str) -> None:
        """Delete the thread's conversation row, checkpoints and writes."""
        await self.delete_session(thread_id)

    async def delete_session(self, thread_id: str | uuid.UUID) -> bool:
        """`adelete_thread` that says whether the session existed; its cached messages go
        with its rows."""
        sid = session_id_for(str(thread_id))
        status = await self._run(lambda conn: thread_ops.delete_rows(conn, [sid]))
        self.message_logs.invalidate(sid)
        return status != "DELETE 0"

    async def delete_sessions(
        self, thread_ids: Sequence[str | uuid.UUID]
    ) -> thread_ops.SessionsDeleted:
        """Delete several threads whole in one transaction: which existed (as session ids)
        and the bytes their rows took as stored."""
        sids = list(dict.fromkeys(session_id_for(str(t)) for t in thread_ids))
        deleted = await self._run(lambda conn: thread_ops.delete_sessions(conn, sids))
        for sid in sids:
            self.message_logs.invalidate(sid)
        return deleted

    async def branches(self, thread_id: str | uuid.UUID) -> list[thread_ops.Branch]:
        """The tips of the thread's branches (root checkpoints no other one continues),
        newest first, each with its transcript; the first one `shown` is the transcript.
        Forks (time travel, an edited message) leave the other tips."""
        sid = session_id_for(str(thread_id))
        return await self._run(lambda conn: thread_ops.branches(conn, sid, self.transcript_channel))

    async def branch_points(self, thread_id: str | uuid.UUID) -> list[branch_ops.BranchPoint]:
        """Where the transcript has alternatives (other branches hold another message
        after the same earlier ones), each with the tip that shows each alternative."""
        sid = session_id_for(str(thread_id))
        channel = self.transcript_channel
        return await self._run(lambda conn: branch_ops.read_branch_points(conn, sid, channel))

    async def afork_point(self, thread_id: str | uuid.UUID, position: int) -> str | None:
        """The checkpoint of the branch shown holding exactly its first `position`
        messages: a run from it with a new input forks the transcript there (None: none)."""
        sid, channel = session_id_for(str(thread_id)), self.transcript_channel
        return await self._run(
            lambda conn: branch_ops.read_fork_point(conn, sid, channel, position)
        )

    async def aswitch_branch(
        self, thread_id: str | uuid.UUID, checkpoint_id: str, lease: uuid.UUID | None = None
    ) -> str:
        """Show the branch ending at root checkpoint `checkpoint_id`: a copy of it becomes
        the session's latest checkpoint (`branch_ops.switch_copy`; fenced by `lease` like
        a turn's writes); its id. `KeyError` for a checkpoint the thread does not have."""
        conf: dict[str, Any] = {
            "thread_id": str(thread_id),
            "checkpoint_ns": "",
            "checkpoint_id": checkpoint_id,
        }
        tip = await self.aget_tuple({"configurable": conf})
        if tip is None:
            raise KeyError(checkpoint_id)
        checkpoint, metadata = branch_ops.switch_copy(tip.checkpoint, tip.metadata)
        if lease is not None:
            conf[LEASE_CONFIG_KEY] = str(lease)
        stored = await self.aput({"configurable": conf}, checkpoint, metadata, {})
        return str(stored["configurable"]["checkpoint_id"])

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        """Delete the checkpoints (and their writes) that these runs created."""
        if not run_ids:
            return

        runs = [str(r) for r in run_ids]
        await self._run(lambda conn: thread_ops.delete_runs(conn, runs, self.transcript_channel))

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Copy every checkpoint, write and the transcript of a thread to a new thread."""
        source, target = session_id_for(source_thread_id), session_id_for(target_thread_id)

        await self._run(
            lambda conn: thread_ops.copy_thread(conn, source, target, str(target_thread_id))
        )
        self.message_logs.invalidate(target)

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """Prune threads as the official Postgres saver does.

        `delete` drops the threads whole. `keep_latest` keeps each namespace's latest
        checkpoint (with its writes and blobs) and deletes finished subgraph calls'
        namespaces whole; it refuses, pruning nothing, when a thread uses a `DeltaChannel`.
        Each thread is pruned in a transaction of its own, on one snapshot of it.
        """
        if isinstance(thread_ids, str):
            raise TypeError("thread_ids must be a sequence of thread IDs, not a str")
        if strategy not in ("keep_latest", "delete"):
            raise ValueError(f"unknown prune strategy {strategy!r}: use keep_latest or delete")
        threads = {session_id_for(t): str(t) for t in thread_ids}
        if not threads:
            return
        sids = list(threads)
        if strategy == "delete":
            await self._run(lambda conn: thread_ops.delete_rows(conn, sids))
            for sid in sids:
                self.message_logs.invalidate(sid)
            return
        await self._run(lambda conn: thread_ops.refuse_delta_threads(conn, threads))
        for sid in sids:
            await self._run(functools.partial(thread_ops.keep_latest, sid=sid, threads=threads))

    async def aretain(
        self, thread_id: str | uuid.UUID, policy: RetentionPolicy
    ) -> retention_ops.Retained:
        """Prune the thread's checkpoints by `policy` (`retention.py`: the latest, an
        unfinished run's and what kept checkpoints read stay; messages always stay), in one
        transaction; a thread a turn or a writer holds now is left alone (`busy`)."""
        sid = session_id_for(str(thread_id))
        return await self._run(lambda conn: retention_ops.retain_session(conn, sid, policy))

    async def aretain_due(
        self, policy: RetentionPolicy, *, limit: int = 1000, batch: int = 100
    ) -> retention_ops.RetentionPass:
        """`aretain` on up to `limit` threads that changed since `policy` last pruned them
        (a periodic pass; `batch` found per statement, each pruned in its own transaction)."""
        return await retention_ops.retention_pass(self._run, policy, limit, batch)

    def get_next_version(self, current: str | None, channel: None = None) -> str:
        """LangGraph's standard version: a 32-digit counter and a random fraction.

        The official saver and `langgraph dev`'s adapter write exactly this form, so
        versions written by any of them on one thread compare correctly as strings; the
        random part keeps forks of a thread from reusing a blob's key.
        """
        if current is None:
            current_v = 0
        elif isinstance(current, int):
            current_v = current
        else:
            current_v = int(current.split(".")[0])
        return f"{current_v + 1:032}.{random.random():016}"


__all__ = ["ConversationCheckpointer", "session_id_for"]
