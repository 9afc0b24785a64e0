"""`aput`'s write: one checkpoint's rows stored in one statement (`vera_put_checkpoint`).

The root transcript's messages are planned as seqs from the saver's cached copy of the
session's messages (new ones get the next seqs). The database refuses a plan made from a
stale copy (another process wrote since) and writes nothing; then the copy is refreshed
under the session's row lock and the same statement runs again, which nothing can move
under. The cache learns what was stored only once the write has committed.
"""

from __future__ import annotations

import asyncio
import functools
import uuid
import weakref
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
from langchain_core.messages import BaseMessage
from langgraph.runtime import DEFAULT_RUNTIME

from src.agent.memory import sql
from src.agent.memory.jsonb import dumps_jsonb
from src.agent.memory.message_log import MessageLogCache
from src.agent.memory.rows import transcript_row
from src.agent.memory.transcript import Pristine


@dataclass
class CheckpointPut:
    """Everything `vera_put_checkpoint` needs but the transcript's plan."""

    session_id: uuid.UUID
    ns: str
    blobs: list[tuple[str, str, str, bytes | None]]  # the other channels' blob rows
    checkpoint_row: tuple[Any, ...]  # id, parent id, thread id, body, metadata, channel
    transcript: list[BaseMessage] | None  # the root transcript's messages, if they changed
    transcript_version: str
    channel: str  # the transcript channel
    lease: uuid.UUID | None  # the turn's fencing token
    defer: bool  # the run goes on: the transcript may show new messages at its end
    expect_head: str | None  # the run's own previous checkpoint, which must still be the head

    async def store(self, conn: asyncpg.Connection, logs: MessageLogCache) -> None:
        """Store the checkpoint, then update `logs` (the caller holds this process's
        session lock, so no other writer of the session plans meanwhile)."""
        committed = await self._try(conn, logs)
        if committed is None:  # our copy was stale: refresh it where nothing moves
            async with conn.transaction():
                await conn.execute(sql.LOCK_CONVERSATION, self.session_id)
                await logs.sync(conn, self.session_id)
                committed = await self._try(conn, logs)
                if committed is None:
                    raise RuntimeError(
                        f"session {self.session_id}: messages moved under the row lock"
                    )
        committed()

    async def _try(
        self, conn: asyncpg.Connection, logs: MessageLogCache
    ) -> Callable[[], None] | None:
        """Plan from the cached copy and store; returns how to update the copy once the
        write commits, or None (nothing written) when the copy was stale."""
        sid = self.session_id
        log = logs.peek(sid)
        seqs: list[int] | None = None
        elements: list[dict[str, Any]] = []
        copies: list[Pristine] = []
        blob_rows = self.blobs
        if self.transcript is not None:
            seqs, elements, copies = logs.plan(log, self.transcript)
            blob_rows = [*self.blobs, transcript_row(self.channel, self.transcript_version, seqs)]
        columns = [list(c) for c in zip(*blob_rows, strict=True)] or [[], [], [], []]
        start = len(log.messages) if log is not None else 0
        new = dumps_jsonb(elements) if elements else None
        result = await conn.fetchrow(
            sql.PUT_CHECKPOINT,
            sid,
            self.ns,
            *columns,
            *self.checkpoint_row,
            seqs,
            new,
            log.row_id if log is not None else None,
            start,
            self.lease,
            self.defer,
            self.expect_head,
        )
        if not result["applied"]:
            return None
        return functools.partial(
            logs.commit, sid, result["row_id"], start, elements, copies, seqs, len(new or "")
        )


class SessionWriters:
    """This saver instance's writers of each session. They take turns (planning from the
    cached copy and storing must not interleave; other sessions and all readers go on), and
    the root checkpoint written last is remembered with the LangGraph run that wrote it: that
    run's next write must find it still the head (else `StaleRunError`: another writer moved
    the thread on meanwhile). A new run from that checkpoint, a fork, is another run."""

    def __init__(self, remembered: int = 1024) -> None:
        self._locks: weakref.WeakValueDictionary[uuid.UUID, asyncio.Lock] = (
            weakref.WeakValueDictionary()
        )
        # The run object itself: it has no weak reference, and its id could be reused.
        self._written: OrderedDict[uuid.UUID, tuple[Any, str]] = OrderedDict()
        self.remembered = remembered

    def lock(self, session_id: uuid.UUID) -> asyncio.Lock:
        lock = self._locks.get(session_id)
        if lock is None:
            lock = self._locks[session_id] = asyncio.Lock()
        return lock

    def expected_head(self, session_id: uuid.UUID, run: Any, parent: str | None) -> str | None:
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
