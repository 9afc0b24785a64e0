"""Checkpoint retention on the database: prune one session by a `RetentionPolicy`
(`retain_session`, one short transaction), and find the sessions a policy has not pruned
since they changed (`due_sessions`). Which checkpoints stay is `retention.select`.

A session is pruned only while nothing writes it: under its conversation row's lock (the
one every checkpoint write takes first; a session whose row a writer holds is skipped, not
waited for) and when no turn holds its lease. Messages are never deleted, so the
transcript (`conversations.messages`) and other branches' messages stay whole; the rows
that go are checkpoints, their pending writes, and the blobs no kept checkpoint refers to.
Each prune is recorded in `checkpoint_retention` (the head it left, the policy, when a
checkpoint kept for its age falls out), so a sweep passes unchanged sessions by.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg

from src.agent.memory import retention_sql as q
from src.agent.memory.retention import RetentionPolicy, Selection, StoredCheckpoint, select


@dataclass(frozen=True)
class Retained:
    """What one session's prune did: `busy` when a turn or a writer held it (nothing was
    pruned); the checkpoints, writes and blobs deleted and the bytes they took as stored
    (reusable by PostgreSQL once vacuumed); the checkpoints kept."""

    session_id: uuid.UUID
    busy: bool = False
    checkpoints: int = 0
    writes: int = 0
    blobs: int = 0
    bytes: int = 0
    kept: int = 0


def _stored(row: asyncpg.Record) -> StoredCheckpoint:
    return StoredCheckpoint(
        ns=row["checkpoint_ns"],
        id=row["checkpoint_id"],
        parent=row["parent_checkpoint_id"],
        created_at=row["created_at"],
        root=row["root"],
        reads_parent_sends=bool(row["reads_parent_sends"]),
        versioned=frozenset(row["versioned"]),
        valued=frozenset(row["valued"]),
    )


def _columns(keys: list[tuple[str, str]]) -> tuple[list[str], list[str]]:
    return [ns for ns, _ in keys], [i for _, i in keys]


async def retain_session(
    conn: asyncpg.Connection, sid: uuid.UUID, policy: RetentionPolicy
) -> Retained:
    """Prune session `sid` by `policy` in one transaction (nothing for an unknown session,
    nor while it is busy)."""
    async with conn.transaction():
        if await conn.fetchval(q.LOCK_SESSION, sid) is None:
            return Retained(sid, busy=bool(await conn.fetchval(q.SESSION_KNOWN, sid)))
        lease = await conn.fetchrow(q.LEASE_HELD, sid)
        if lease["held"]:
            return Retained(sid, busy=True)
        rows = await conn.fetch(q.CHECKPOINTS, sid)
        if not rows:
            return Retained(sid)
        stored = [_stored(r) for r in rows]
        if any(r["opaque_delta"] for r in rows):  # LangGraph.js' deltas: channels unnamed
            selection = Selection(frozenset(c.key for c in stored), frozenset(), None)
        else:
            selection = select(stored, policy, lease["now"])
        gone = selection.gone(stored)
        head = max((c.id for c in stored if c.ns == ""), default=None)
        retained = await _delete(conn, sid, stored, selection, gone)
        if head is not None:
            await conn.execute(q.MARK, sid, head, policy.label, selection.due_at)
        return retained


async def _delete(
    conn: asyncpg.Connection,
    sid: uuid.UUID,
    stored: list[StoredCheckpoint],
    selection: Selection,
    gone: list[tuple[str, str]],
) -> Retained:
    if not gone:
        return Retained(sid, kept=len(stored))
    kept_ns = {ns for ns, _ in selection.kept}
    whole = sorted({c.ns for c in stored} - kept_ns)  # subgraph calls that go whole
    deleted = await conn.fetchrow(q.DELETE_CHECKPOINTS, sid, *_columns(gone), whole)
    if selection.orphaned:
        await conn.execute(q.CLEAR_PARENTS, sid, *_columns(sorted(selection.orphaned)))
    blobs = await conn.fetchrow(q.DELETE_UNREFERENCED_BLOBS, sid)
    return Retained(
        sid,
        checkpoints=deleted["checkpoints"],
        writes=deleted["writes"],
        blobs=blobs["blobs"],
        bytes=int(deleted["bytes"]) + int(blobs["bytes"]),
        kept=len(selection.kept),
    )


async def due_sessions(
    conn: asyncpg.Connection, policy: RetentionPolicy, after: uuid.UUID, limit: int
) -> list[uuid.UUID]:
    """Up to `limit` sessions after `after` (session order) that `policy` has not pruned
    since their head moved (or a checkpoint kept for its age fell out), none a turn holds."""
    rows = await conn.fetch(q.DUE_SESSIONS, after, policy.label, limit)
    return [r["session_id"] for r in rows]


Run = Callable[[Callable[[asyncpg.Connection], Awaitable[Any]]], Awaitable[Any]]


@dataclass
class RetentionPass:
    """What one pass over the due sessions did: the sessions pruned (or found with nothing
    to prune), those skipped as busy, and the rows and bytes deleted."""

    sessions: int = 0
    busy: int = 0
    checkpoints: int = 0
    writes: int = 0
    blobs: int = 0
    bytes: int = 0

    def add(self, r: Retained) -> None:
        if r.busy:
            self.busy += 1
            return
        self.sessions += 1
        self.checkpoints += r.checkpoints
        self.writes += r.writes
        self.blobs += r.blobs
        self.bytes += r.bytes


async def retention_pass(
    run: Run, policy: RetentionPolicy, limit: int, batch: int
) -> RetentionPass:
    """Prune up to `limit` due sessions, `batch` found at a time, each in its own
    transaction on a connection of `run` (the checkpointer's `_run`)."""
    done = RetentionPass()
    after = uuid.UUID(int=0)
    seen = 0
    while seen < limit:
        wanted = min(batch, limit - seen)
        sids: list[uuid.UUID] = await run(
            functools.partial(due_sessions, policy=policy, after=after, limit=wanted)
        )
        for sid in sids:
            done.add(await run(functools.partial(retain_session, sid=sid, policy=policy)))
        seen += len(sids)
        if len(sids) < wanted:
            break
        after = sids[-1]
    return done
