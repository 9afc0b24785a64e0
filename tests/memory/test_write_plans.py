"""The write functions' plans (issue 28): each connection plans their statements once, at
the first call (`plan_cache_mode = force_generic_plan`, so short conversations do not pay
five custom plans per statement per connection), and those plans look rows up by key
whatever the tables held when they were made: a connection whose first writes ran on
empty tables (VACUUMed empty, autovacuum off, so nothing invalidates its plans) still
scans no table sequentially once the tables are loaded."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from src.agent.memory import sql
from src.agent.memory.fencing import (
    LEASE_LOST_SQLSTATE,
    SESSION_LEASED_SQLSTATE,
    STALE_RUN_SQLSTATE,
)
from src.agent.memory.schema import upgrade_schema
from tests.support import fresh_database

TABLES = (
    "conversations",
    "transcript_heads",
    "turn_leases",
    "checkpoints",
    "checkpoint_blobs",
    "checkpoint_writes",
    "conversation_messages",
)
LOADED_SESSIONS = 3000
SEQ_SCANS = "SELECT COALESCE(SUM(seq_scan), 0) FROM pg_stat_user_tables WHERE relname = ANY ($1)"


def checkpoint_args(
    session: uuid.UUID,
    conversation: uuid.UUID,
    step: int,
    lease: uuid.UUID | None,
    run_parent: str | None = None,
) -> list[object]:
    """`vera_put_checkpoint`'s arguments for step `step` of `session`: a new transcript
    message at every step, so the statements that store and show messages run too."""
    version = f"{step:032d}.0.1"
    body = {"v": 4, "id": f"c{step:04d}", "channel_versions": {"messages": version}}
    return sql.PUT_CHECKPOINT.args(
        session_id=session,
        checkpoint_ns="",
        checkpoint_id=f"c{step:04d}",
        parent_checkpoint_id=f"c{step - 1:04d}" if step else None,
        thread_id=str(session),
        checkpoint=json.dumps(body),
        metadata="{}",
        channels=["messages"],
        versions=[version],
        types=["vera.transcript_ranges"],
        blobs=[json.dumps([[0, step + 1]]).encode()],
        transcript_channel="messages",
        seqs=list(range(step + 1)),
        new_messages=json.dumps([{"type": "human", "data": {"content": f"m{step}"}}]),
        next_seq=step,
        conversation_id=conversation,
        lease=lease,
        run_parent=run_parent,
        run_goes_on=step % 2 == 0,  # every other step waits for the end of its run
    )


def writes_args(session: uuid.UUID, step: int, lease: uuid.UUID | None) -> list[object]:
    return sql.PUT_WRITES.args(
        session_id=session,
        checkpoint_ns="",
        checkpoint_id=f"c{step:04d}",
        task_id="task",
        task_path="",
        idxs=[0],
        channels=["messages"],
        types=["msgpack"],
        blobs=[b"w"],
        replace=False,
        lease=lease,
        run_stops=step % 3 == 0,
    )


async def write(
    conn: asyncpg.Connection, session: uuid.UUID, steps: range, lease: uuid.UUID | None
) -> None:
    for step in steps:
        written = await conn.fetchrow(sql.PUT_WRITES.text, *writes_args(session, step, lease))
        args = checkpoint_args(session, written["conversation_id"], step, lease)
        row = await conn.fetchrow(sql.PUT_CHECKPOINT.text, *args)
        assert row["stored"]


@pytest.fixture
async def empty_database(server_dsn: str) -> AsyncIterator[str]:
    """A new database whose tables were VACUUMed empty, autovacuum off."""
    async with fresh_database(server_dsn, "vera_write_plan") as dsn:
        conn = await asyncpg.connect(dsn)
        try:
            await upgrade_schema(conn)
            for table in TABLES:
                await conn.execute(f"ALTER TABLE {table} SET (autovacuum_enabled = false)")
                await conn.execute(f"VACUUM ANALYZE {table}")
        finally:
            await conn.close()
        yield dsn


async def load(conn: asyncpg.Connection) -> None:
    """Many other sessions, each with a lease, a head, checkpoints, blobs and writes."""
    await conn.execute(
        """
WITH s AS (SELECT gen_random_uuid() AS sid FROM generate_series(1, $1)),
c AS (INSERT INTO conversations (session_id) SELECT sid FROM s RETURNING session_id),
h AS (INSERT INTO transcript_heads (session_id) SELECT session_id FROM c RETURNING session_id),
l AS (INSERT INTO turn_leases (session_id, run_id, expires_at)
    SELECT session_id, gen_random_uuid(), now() + interval '1 hour' FROM h RETURNING session_id)
INSERT INTO conversation_messages (session_id, seq, element)
SELECT session_id, k, '{"type": "human"}' FROM l, generate_series(0, 4) AS k""",
        LOADED_SESSIONS,
    )
    await conn.execute(
        """
INSERT INTO checkpoints (session_id, checkpoint_id, thread_id, checkpoint)
SELECT session_id, 'c' || k, session_id::text, '{}' FROM conversations, generate_series(1, 3) k"""
    )
    await conn.execute(
        """
INSERT INTO checkpoint_blobs (session_id, channel, version, type, blob)
SELECT session_id, 'messages', checkpoint_id, 'msgpack', '\\x00' FROM checkpoints"""
    )
    await conn.execute(
        """
INSERT INTO checkpoint_writes (session_id, checkpoint_id, task_id, idx, channel, blob)
SELECT session_id, checkpoint_id, 't', 0, 'messages', '\\x00' FROM checkpoints"""
    )


async def seq_scans(writer: asyncpg.Connection, reader: asyncpg.Connection) -> int:
    for conn in (writer, reader):  # each flushes its counters before it answers
        await conn.execute("SELECT pg_stat_force_next_flush()")
    await reader.execute("SELECT pg_stat_clear_snapshot()")
    return int(await reader.fetchval(SEQ_SCANS, list(TABLES)))


@pytest.mark.parametrize("leased", [False, True])
async def test_writes_planned_on_empty_tables_look_rows_up_by_key(
    empty_database: str, leased: bool
) -> None:
    writer = await asyncpg.connect(empty_database)
    reader = await asyncpg.connect(empty_database)
    try:
        lease = uuid.uuid4() if leased else None
        first, second = uuid.uuid4(), uuid.uuid4()
        for session in (first, second):
            if lease is not None:
                await reader.execute(
                    "INSERT INTO turn_leases VALUES ($1, $2, now() + interval '1 hour')",
                    session,
                    lease,
                )
        await write(writer, first, range(8), lease)  # every statement planned, tables empty
        await load(reader)
        before = await seq_scans(writer, reader)
        await write(writer, first, range(8, 16), lease)
        await write(writer, second, range(8), lease)
        assert await seq_scans(writer, reader) == before
    finally:
        await writer.close()
        await reader.close()


STORED = """SELECT (SELECT count(*) FROM checkpoints WHERE session_id = $1),
    (SELECT count(*) FROM checkpoint_writes WHERE session_id = $1),
    (SELECT row(h.*)::text FROM transcript_heads h WHERE session_id = $1),
    (SELECT messages::text FROM conversations WHERE session_id = $1)"""


async def refused(
    conn: asyncpg.Connection, sqlstate: str, statement: str, args: list[object]
) -> None:
    with pytest.raises(asyncpg.PostgresError) as raised:
        await conn.fetchrow(statement, *args)
    assert raised.value.sqlstate == sqlstate


async def test_plans_cached_at_the_first_call_still_refuse_every_stale_writer(
    empty_database: str,
) -> None:
    """Each fencing check is a parameter of the cached plan, not of the first call's: once
    the connection has planned everything, a writer whose lease another run took (VR001), a
    lease-less writer while a turn holds the session (VR002) and a run whose last
    checkpoint is no longer the latest (VR003) are refused, and nothing is stored."""
    writer = await asyncpg.connect(empty_database)
    other = await asyncpg.connect(empty_database)
    try:
        session, lease = uuid.uuid4(), uuid.uuid4()
        await other.execute(
            "INSERT INTO turn_leases VALUES ($1, $2, now() + interval '1 hour')", session, lease
        )
        await write(writer, session, range(8), lease)
        conversation = await other.fetchval(
            "SELECT id FROM conversations WHERE session_id = $1", session
        )
        before = await other.fetchrow(STORED, session)

        await other.execute(
            "UPDATE turn_leases SET run_id = $2 WHERE session_id = $1", session, uuid.uuid4()
        )
        calls = (
            (
                sql.PUT_CHECKPOINT.text,
                lambda lease: checkpoint_args(session, conversation, 8, lease),
            ),
            (sql.PUT_WRITES.text, lambda lease: writes_args(session, 8, lease)),
        )
        for statement, args_with in calls:
            await refused(writer, LEASE_LOST_SQLSTATE, statement, args_with(lease))
            await refused(writer, SESSION_LEASED_SQLSTATE, statement, args_with(None))
        await other.execute("UPDATE turn_leases SET expires_at = now() - interval '1 second'")
        stale = checkpoint_args(session, conversation, 8, None, run_parent="c0003")
        await refused(writer, STALE_RUN_SQLSTATE, sql.PUT_CHECKPOINT.text, stale)
        assert await other.fetchrow(STORED, session) == before

        current = checkpoint_args(session, conversation, 8, None, run_parent="c0007")
        assert (await writer.fetchrow(sql.PUT_CHECKPOINT.text, *current))["stored"]
    finally:
        await writer.close()
        await other.close()
