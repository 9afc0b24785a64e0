"""`ConversationCheckpointer`: LangGraph's checkpoint contract on asyncpg.

Tables (see `migrations/`): `conversations` (one row per session; its `messages` array is
the readable transcript and the only copy of the root `messages` channel), `checkpoints`,
`checkpoint_blobs` (other channel values, once per version) and `checkpoint_writes`.
There is no saver-wide lock: every call takes its own pooled connection, and writers of
one session serialize on that session's `conversations` row for one statement (or, when
the cached log is stale, one short transaction). Whole-thread operations (delete, copy,
prune) are in `maintenance.py`, the sync methods in `sync_bridge.py`.
"""

from __future__ import annotations

import asyncio
import random
import uuid
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, TypeVar

import asyncpg
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    WRITES_IDX_MAP,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    get_serializable_checkpoint_metadata,
)
from langgraph.checkpoint.serde.base import SerializerProtocol

from src.agent.memory import sql
from src.agent.memory.fencing import as_lease_lost, lease_of
from src.agent.memory.maintenance import ThreadMaintenance
from src.agent.memory.message_log import (
    TRANSCRIPT_BLOB_TYPE,
    TranscriptCache,
    encode_ranges,
    ranges_end,
)
from src.agent.memory.store import PostgresMemoryStore
from src.agent.memory.sync_bridge import SyncBridge
from src.agent.memory.threads import session_id_for
from src.agent.memory.transcript import dumps_jsonb, is_message_list
from src.agent.memory.tuples import TupleBuilder, build_list_query

T = TypeVar("T")
_PAGE_SIZE = 100
_PUT_ATTEMPTS = 8  # a stale copy is refreshed and the plan retried; more means a livelock


class ConversationCheckpointer(ThreadMaintenance, SyncBridge):
    """Async PostgreSQL checkpointer whose root `messages` channel is the transcript."""

    def __init__(
        self,
        store: PostgresMemoryStore,
        *,
        serde: SerializerProtocol | None = None,
        transcript_channel: str = "messages",
    ) -> None:
        super().__init__(serde=serde)
        self.store = store
        self.transcript_channel = transcript_channel
        self.transcripts = TranscriptCache(self.serde)
        self._locks: weakref.WeakValueDictionary[uuid.UUID, asyncio.Lock] = (
            weakref.WeakValueDictionary()
        )
        try:
            self.loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            self.loop = None

    async def setup(self) -> None:
        """Create or upgrade the schema (same as `store.initialize()`)."""
        await self.store.initialize()

    async def _run(self, fn: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        if self.loop is None:
            self.loop = asyncio.get_running_loop()
        try:
            return await self.store.run(fn)
        except asyncpg.PostgresError as exc:
            lost = as_lease_lost(exc)
            if lost is None:
                raise
            raise lost from exc

    # -- reads -----------------------------------------------------------------------

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        conf = config["configurable"]
        sid = session_id_for(conf["thread_id"])
        ns = conf.get("checkpoint_ns", "")
        checkpoint_id = conf.get("checkpoint_id")

        async def fetch(conn: asyncpg.Connection) -> CheckpointTuple | None:
            if checkpoint_id:
                row = await conn.fetchrow(sql.SELECT_TUPLE_BY_ID, sid, ns, checkpoint_id)
            else:
                row = await conn.fetchrow(sql.SELECT_LATEST_TUPLE, sid, ns)
            if row is None:
                return None
            return (await self._builder(conn, [row])).build(row)

        return await self._run(fetch)

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
        cursor: tuple[str, uuid.UUID, str] | None = None
        builder: TupleBuilder | None = None
        while remaining is None or remaining > 0:
            page = _PAGE_SIZE if remaining is None else min(_PAGE_SIZE, remaining)
            query, args = build_list_query(
                config, filter, before, cursor, page, session_id_for, dumps_jsonb
            )

            async def fetch(conn: asyncpg.Connection, query: str = query, args: list = args):
                rows = await conn.fetch(query, *args)
                nonlocal builder
                builder = await self._builder(conn, rows, builder)
                return rows

            rows = await self._run(fetch)
            assert builder is not None
            for row in rows:
                yield builder.build(row)
            if len(rows) < page:
                return
            last = rows[-1]
            cursor = (last["checkpoint_id"], last["session_id"], last["checkpoint_ns"])
            if remaining is not None:
                remaining -= len(rows)

    async def _builder(
        self, conn: asyncpg.Connection, rows: Sequence[asyncpg.Record], builder: Any = None
    ) -> TupleBuilder:
        """A tuple builder holding the transcript logs that `rows` refer to.

        The cached log is used as is when it already holds every position the rows need;
        otherwise its unseen tail is read (one query per session).
        """
        builder = builder or TupleBuilder(self.serde, self.transcripts)
        needed: dict[uuid.UUID, tuple[uuid.UUID, int]] = {}
        for r in rows:
            for _, kind, blob in r["blobs"] or ():
                if kind == TRANSCRIPT_BLOB_TYPE:
                    sid = r["session_id"]
                    end = max(ranges_end(blob), needed.get(sid, (None, 0))[1])
                    needed[sid] = (r["conversation_id"], end)
        for sid, (row_id, end) in needed.items():
            log = builder.logs.get(sid)
            if log is not None and log.row_id == row_id and len(log.messages) >= end:
                continue
            log = self.transcripts.covering(sid, row_id, end)
            builder.logs[sid] = log or await self.transcripts.sync(conn, sid)
        return builder

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
        sid = session_id_for(thread_id)
        values = checkpoint["channel_values"]

        body: dict[str, Any] = {k: v for k, v in checkpoint.items() if k != "channel_values"}
        body["channel_values"] = {
            k: v for k, v in values.items() if v is None or isinstance(v, str | int | bool)
        }
        blobs: list[tuple[str, str, str, bytes | None]] = []
        transcript: list | None = None
        version = ""
        for channel, channel_version in new_versions.items():
            if channel in body["channel_values"]:
                continue
            if channel not in values:
                blobs.append((channel, str(channel_version), "empty", None))
            elif (
                ns == "" and channel == self.transcript_channel and is_message_list(values[channel])
            ):
                transcript, version = values[channel], str(channel_version)
            else:
                blobs.append(
                    (channel, str(channel_version), *self.serde.dumps_typed(values[channel]))
                )
        row = (
            checkpoint["id"],
            conf.get("checkpoint_id"),
            thread_id,
            dumps_jsonb(body),
            dumps_jsonb(get_serializable_checkpoint_metadata(config, metadata)),
            self.transcript_channel,
        )
        lease = lease_of(conf)

        async def write(conn: asyncpg.Connection) -> None:
            for _ in range(_PUT_ATTEMPTS):
                log = self.transcripts.peek(sid)
                seqs, elements, copies = None, [], []
                blob_rows = blobs
                if transcript is not None:
                    seqs, elements, copies = self.transcripts.plan(log, transcript)
                    ranges = (self.transcript_channel, version, TRANSCRIPT_BLOB_TYPE,
                              encode_ranges(seqs))  # fmt: skip
                    blob_rows = [*blobs, ranges]
                columns = [list(c) for c in zip(*blob_rows, strict=True)] or [[], [], [], []]
                start = len(log.messages) if log is not None else 0
                result = await conn.fetchrow(
                    sql.PUT_CHECKPOINT, sid, ns, *columns, *row, seqs,
                    dumps_jsonb(elements) if elements else None,
                    log.row_id if log is not None else None, start, lease,
                )  # fmt: skip
                if result["applied"]:
                    self.transcripts.commit(sid, result["row_id"], start, elements, copies, seqs)
                    return
                await self.transcripts.sync(conn, sid)  # our copy was stale: plan again
            raise RuntimeError(f"session {sid}: could not store checkpoint (store kept moving)")

        async with self._session_lock(sid):
            await self._run(write)
        return {
            "configurable": {
                "thread_id": thread_id,
                "checkpoint_ns": ns,
                "checkpoint_id": checkpoint["id"],
            }
        }

    def _session_lock(self, sid: uuid.UUID) -> asyncio.Lock:
        """This instance's writers of one session take turns (planning from the cached copy
        and storing must not interleave); other sessions and all readers go on."""
        lock = self._locks.get(sid)
        if lock is None:
            lock = self._locks[sid] = asyncio.Lock()
        return lock

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
        special = all(channel in WRITES_IDX_MAP for channel, _ in writes)
        idxs, channels, types, payloads = [], [], [], []
        for idx, (channel, value) in enumerate(writes):
            kind, payload = self.serde.dumps_typed(value)
            idxs.append(WRITES_IDX_MAP.get(channel, idx))
            channels.append(channel)
            types.append(kind)
            payloads.append(payload)
        args = (sid, conf.get("checkpoint_ns", ""), conf["checkpoint_id"], task_id, task_path)
        lease = lease_of(conf)

        async def write(conn: asyncpg.Connection) -> None:
            head = await conn.fetchrow(
                sql.PUT_WRITES, *args, idxs, channels, types, payloads, special, lease
            )
            if head["created"]:  # these writes came first: the new conversation is empty
                self.transcripts.seed(sid, head["row_id"])

        await self._run(write)

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
