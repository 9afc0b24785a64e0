"""`aput`'s write: one checkpoint's rows stored in one statement (`vera_put_checkpoint`).

The root transcript is planned from the saver's cached copy of the session's message log
(`TranscriptPlan`). The database refuses a plan made from a stale copy (another process
wrote since) and writes nothing; then the copy catches up under the session's row lock
and the same statement runs again, which nothing can move under. The cache takes in what
was stored only once the write has committed.
"""

from __future__ import annotations

import asyncio
import uuid
import weakref
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import asyncpg
from langgraph.runtime import DEFAULT_RUNTIME

from src.agent.memory import sql
from src.agent.memory.message_log import MessageLogCache
from src.agent.memory.rows import CheckpointRows, transcript_row
from src.agent.memory.session_log import TranscriptPlan


@dataclass(frozen=True)
class CheckpointPut:
    """One `aput`: a checkpoint's rows and what its write is checked against (`lease`: the
    turn's fencing token; `run_parent`: the run's own last checkpoint, which must still be
    the session's latest). `run_goes_on`: the transcript may show the checkpoint's new
    messages at the end of its run."""

    session_id: uuid.UUID
    checkpoint_ns: str
    checkpoint_id: str
    parent_checkpoint_id: str | None
    thread_id: str
    rows: CheckpointRows
    transcript_channel: str
    lease: uuid.UUID | None
    run_goes_on: bool
    run_parent: str | None

    async def store(self, conn: asyncpg.Connection, logs: MessageLogCache) -> None:
        """Store the checkpoint, then update `logs` (the caller holds this process's
        session lock, so no other writer of the session plans meanwhile)."""
        stored = await self._store_if_current(conn, logs)
        if stored is None:  # our copy was stale: catch up where nothing moves
            async with conn.transaction():
                await conn.execute(
                    sql.LOCK_CONVERSATION.text,
                    *sql.LOCK_CONVERSATION.args(session_id=self.session_id, lock=True),
                )
                await logs.catch_up(conn, self.session_id)
                stored = await self._store_if_current(conn, logs)
                if stored is None:
                    raise RuntimeError(
                        f"session {self.session_id}: messages moved under the row lock"
                    )
        conversation_id, plan = stored
        if plan is not None:
            logs.record_stored(self.session_id, conversation_id, plan)

    async def _store_if_current(
        self, conn: asyncpg.Connection, logs: MessageLogCache
    ) -> tuple[uuid.UUID, TranscriptPlan | None] | None:
        """Plan the transcript from the cached copy and store; returns the conversation's id
        and the plan stored, or None (nothing written) when the copy was stale."""
        plan = None
        blobs = self.rows.blobs
        if self.rows.transcript is not None:
            plan = logs.plan(self.session_id, self.rows.transcript)
            version = self.rows.transcript_version
            blobs = [*blobs, transcript_row(self.transcript_channel, version, plan.seqs)]
        row = await conn.fetchrow(
            sql.PUT_CHECKPOINT.text,
            *sql.PUT_CHECKPOINT.args(
                session_id=self.session_id,
                checkpoint_ns=self.checkpoint_ns,
                checkpoint_id=self.checkpoint_id,
                parent_checkpoint_id=self.parent_checkpoint_id,
                thread_id=self.thread_id,
                checkpoint=self.rows.body,
                metadata=self.rows.metadata,
                channels=[channel for channel, _, _, _ in blobs],
                versions=[version for _, version, _, _ in blobs],
                types=[kind for _, _, kind, _ in blobs],
                blobs=[blob for _, _, _, blob in blobs],
                transcript_channel=self.transcript_channel,
                **transcript_args(plan),
                lease=self.lease,
                run_parent=self.run_parent,
                run_goes_on=self.run_goes_on,
            ),
        )
        return (row["conversation_id"], plan) if row["stored"] else None


def transcript_args(plan: TranscriptPlan | None) -> dict[str, Any]:
    """`vera_put_checkpoint`'s arguments of the transcript's plan (none: nothing to check)."""
    if plan is None:
        return {"seqs": None, "new_messages": None, "next_seq": 0, "conversation_id": None}
    return {
        "seqs": plan.seqs,
        "new_messages": plan.new_messages,
        "next_seq": plan.next_seq,
        "conversation_id": plan.conversation_id,
    }


class SessionWriters:
    """This saver instance's writers of each session. They take turns (planning from the
    cached copy and storing must not interleave; other sessions and all readers go on), and
    the root checkpoint written last is remembered with the LangGraph run that wrote it: that
    run's next write must find it still the latest (else `StaleRunError`: another writer
    moved the thread on meanwhile). A new run from that checkpoint, a fork, is another run."""

    def __init__(self, remembered: int = 1024) -> None:
        self._locks: weakref.WeakValueDictionary[uuid.UUID, asyncio.Lock] = (
            weakref.WeakValueDictionary()
        )
        # The run object itself: it has no weak reference, and its id could be reused.
        self._written: OrderedDict[uuid.UUID, tuple[Any, str]] = OrderedDict()
        self._rows: OrderedDict[uuid.UUID, None] = OrderedDict()  # conversation rows seen
        self.remembered = remembered

    def has_row(self, session_id: uuid.UUID) -> bool:
        """Whether this saver saw the session's conversation row (it may be deleted since:
        the write functions create it again, at worst waiting for a concurrent write)."""
        return session_id in self._rows

    async def create_row(
        self,
        conn: asyncpg.Connection,
        session_id: uuid.UUID,
        lease: uuid.UUID | None,
        logs: MessageLogCache,
    ) -> None:
        """Create the session's conversation row on its own (`sql.CREATE_CONVERSATION`),
        before this saver's first write of the session; a row created here is empty."""
        created = await conn.fetchval(sql.CREATE_CONVERSATION, session_id, lease)
        if created is not None:
            logs.seed(session_id, created)
        self._rows[session_id] = None
        self._rows.move_to_end(session_id)
        if len(self._rows) > self.remembered:
            self._rows.popitem(last=False)

    def lock(self, session_id: uuid.UUID) -> asyncio.Lock:
        lock = self._locks.get(session_id)
        if lock is None:
            lock = self._locks[session_id] = asyncio.Lock()
        return lock

    def run_parent(self, session_id: uuid.UUID, run: Any, parent: str | None) -> str | None:
        """`parent` when `run` wrote it (the run goes on from its own last checkpoint)."""
        writer, last = self._written.get(session_id, (None, None))
        return last if run is not None and writer is run and last == parent else None

    def wrote(self, session_id: uuid.UUID, run: Any, checkpoint_id: str) -> None:
        self._written[session_id] = (run, checkpoint_id)
        self._written.move_to_end(session_id)
        if len(self._written) > self.remembered:
            self._written.popitem(last=False)


def run_of(configurable: dict[str, Any]) -> Any:
    """The object LangGraph creates once per graph run and passes in each of its writes'
    config (its `Runtime`, under a private key); None when absent: nothing is checked."""
    runtime = configurable.get("__pregel_runtime")
    return None if runtime is DEFAULT_RUNTIME else runtime  # the default: not a run
