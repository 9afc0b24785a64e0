"""Plan stability of the checkpoint reads: the projection runs once, whatever plan is cached.

asyncpg prepares every statement, and from its sixth execution on PostgreSQL may switch a
prepared statement to a cached *generic* plan (one built without the parameter values). It is
kept until something invalidates it, e.g. a VACUUM or ANALYZE updating the tables'
statistics. With autovacuum off, tables VACUUMed while empty and a connection whose first
reads ran while the tables were still (nearly) empty, the cached plan is the one for empty
tables: a Seq Scan of `checkpoints` sorted by `checkpoint_id`. With the previous "latest
checkpoint" query the blob/writes/conversation sub-selects of the projection were evaluated
below that Sort, once for *every* checkpoint of the session, so each read cost
O(checkpoints x writes) and a conversation's reads grew quadratically with its length.

Note that statistics that merely *say* empty are not enough to reproduce it: the planner
sizes a table from its current number of pages, so a plan made after the rows are in is a
good one. The bad plan needs to have been made (and cached) while the tables were empty.
No query text can make that plan use an index (an empty table's Seq Scan costs nothing);
what the query shape guarantees is that the expensive projection runs once, on the one
selected row. Index lookups for plans made on loaded tables are checked separately, for
both generic and custom plans, with and without statistics.

Each test uses its own database: schema from the migrations, autovacuum off, VACUUMed while
empty, then checkpoints for one long session (several namespaces) and a few short ones.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import pytest

from src.agent.memory import sql
from src.agent.memory.schema import upgrade_schema
from tests.support import fresh_database

TABLES = ("conversations", "checkpoints", "checkpoint_blobs", "checkpoint_writes")
LONG_SESSION_CHECKPOINTS = 300
SHORT_SESSIONS, SHORT_SESSION_CHECKPOINTS = 5, 20
SUBGRAPH_NS, SUBGRAPH_CHECKPOINTS = "child:1", 40
WRITES_PER_CHECKPOINT = 3


def latest_query() -> str:
    """`SELECT_LATEST_TUPLE` ($1 session_id, $2 checkpoint_ns)."""
    return sql.SELECT_LATEST_TUPLE


def by_id_query() -> str:
    """`SELECT_TUPLE_BY_ID` ($1 session_id, $2 checkpoint_ns, $3 checkpoint_id)."""
    return sql.SELECT_TUPLE_BY_ID


def checkpoint_id(step: int, session: int) -> str:
    """A uuid6-like id: ordered by time, the sessions' checkpoints interleaved."""
    return f"1ef00000-{step:04x}-6{session:03x}-8000-000000000000"


@dataclass
class Dataset:
    long_session: uuid.UUID
    short_sessions: list[uuid.UUID]

    @property
    def latest_id(self) -> str:
        return checkpoint_id(LONG_SESSION_CHECKPOINTS, 1)

    @property
    def middle_id(self) -> str:
        return checkpoint_id(LONG_SESSION_CHECKPOINTS // 2, 1)


async def load(conn: asyncpg.Connection) -> Dataset:
    """Rows shaped like the checkpointer's: versions in `checkpoint`, blobs, pending writes."""
    data = Dataset(uuid.uuid4(), [uuid.uuid4() for _ in range(SHORT_SESSIONS)])
    sessions = [(1, data.long_session, "", LONG_SESSION_CHECKPOINTS)]
    sessions.append((1, data.long_session, SUBGRAPH_NS, SUBGRAPH_CHECKPOINTS))
    sessions += [
        (i + 2, s, "", SHORT_SESSION_CHECKPOINTS) for i, s in enumerate(data.short_sessions)
    ]
    for number, session, ns, count in sessions:
        await conn.execute(
            "INSERT INTO conversations (session_id) VALUES ($1) ON CONFLICT DO NOTHING", session
        )
        ids = [checkpoint_id(step, number) for step in range(1, count + 1)]
        await conn.execute(
            """
INSERT INTO checkpoints (session_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id,
    thread_id, checkpoint, metadata)
SELECT $1::uuid, $2, ids[i], ids[i - 1], $4,
    jsonb_build_object('v', 4, 'id', ids[i], 'ts', now()::text,
        'channel_versions', jsonb_build_object(
            'messages', lpad(i::text, 8, '0'), '__start__', lpad(i::text, 8, '0'),
            'reply', lpad(greatest(i - 1, 1)::text, 8, '0'),
            'branch:to:reply', lpad(greatest(i - 1, 1)::text, 8, '0')),
        'versions_seen', '{}'::jsonb),
    jsonb_build_object('source', 'loop', 'step', i, 'run_id', gen_random_uuid()::text)
FROM (SELECT $3::text[] AS ids) a, generate_subscripts($3::text[], 1) AS i""",
            session,
            ns,
            ids,
            str(session),
        )
        await conn.execute(
            """
INSERT INTO checkpoint_blobs (session_id, checkpoint_ns, channel, version, type, blob)
SELECT c.session_id, c.checkpoint_ns, v.key, v.value, 'msgpack',
    convert_to(repeat('b', 200), 'UTF8')
FROM checkpoints c, jsonb_each_text(c.checkpoint -> 'channel_versions') AS v
WHERE c.session_id = $1 AND c.checkpoint_ns = $2
ON CONFLICT DO NOTHING""",
            session,
            ns,
        )
        await conn.execute(
            """
INSERT INTO checkpoint_writes (session_id, checkpoint_ns, checkpoint_id, task_id, idx, channel,
    type, blob, task_path)
SELECT c.session_id, c.checkpoint_ns, c.checkpoint_id, md5(c.checkpoint_id), k, 'messages',
    'msgpack', convert_to(repeat('w', 200), 'UTF8'), '~__pregel_pull, reply'
FROM checkpoints c, generate_series(0, $3 - 1) AS k
WHERE c.session_id = $1 AND c.checkpoint_ns = $2""",
            session,
            ns,
            WRITES_PER_CHECKPOINT,
        )
    return data


@pytest.fixture
async def empty_tables(server_dsn: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection to a new database whose tables were VACUUMed empty, autovacuum off."""
    async with fresh_database(server_dsn, "vera_plan") as dsn:
        conn = await asyncpg.connect(dsn)
        try:
            await upgrade_schema(conn)
            for table in TABLES:
                await conn.execute(f"ALTER TABLE {table} SET (autovacuum_enabled = false)")
                await conn.execute(f"VACUUM {table}")
            yield conn
        finally:
            await conn.close()


def literal(value: str | uuid.UUID) -> str:
    return "'" + str(value).replace("'", "''") + "'"


async def prepare(conn: asyncpg.Connection, name: str, query: str, types: str) -> None:
    await conn.execute(f"PREPARE {name}({types}) AS {query}")


async def execute(conn: asyncpg.Connection, name: str, args: list[str]) -> list[asyncpg.Record]:
    return await conn.fetch(f"EXECUTE {name}({', '.join(args)})")


async def explain(conn: asyncpg.Connection, name: str, args: list[str]) -> dict[str, Any]:
    raw = await conn.fetchval(
        f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) EXECUTE {name}({', '.join(args)})"
    )
    return json.loads(raw)[0]["Plan"]


def nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    found = [plan]
    for child in plan.get("Plans", ()):
        found += nodes(child)
    return found


def describe(node: dict[str, Any]) -> str:
    keys = ("Subplan Name", "Node Type", "Relation Name", "Index Name", "Actual Loops")
    keys += ("Actual Rows", "Rows Removed by Filter")
    return ", ".join(f"{k}={node[k]}" for k in keys if k in node)


def assert_subqueries_run_once(plan: dict[str, Any]) -> None:
    """Each SubPlan, InitPlan and CTE of the statement is evaluated at most once."""
    repeated = [n for n in nodes(plan) if "Subplan Name" in n and n["Actual Loops"] > 1]
    assert not repeated, "sub-selects evaluated once per scanned checkpoint:\n" + "\n".join(
        describe(n) for n in repeated
    )


def assert_checkpoint_key_lookup(plan: dict[str, Any]) -> None:
    """`checkpoints` is read by index, fetching only the row it returns."""
    scans = [n for n in nodes(plan) if n.get("Relation Name") == "checkpoints"]
    assert scans
    bad = [
        n
        for n in scans
        if n["Node Type"] not in ("Index Scan", "Index Only Scan")
        or n["Actual Rows"] * n["Actual Loops"] > 1
        or n.get("Rows Removed by Filter", 0) > 0
    ]
    assert not bad, "checkpoints is scanned, not looked up:\n" + "\n".join(describe(n) for n in bad)


async def generic_plans(conn: asyncpg.Connection, name: str) -> int:
    return await conn.fetchval(
        "SELECT generic_plans FROM pg_prepared_statements WHERE name = $1", name
    )


def check_row(row: asyncpg.Record, data: Dataset, expected_id: str) -> None:
    assert row["session_id"] == data.long_session
    assert row["checkpoint_ns"] == ""
    assert row["checkpoint_id"] == expected_id
    assert row["conversation_id"] is not None
    assert len(row["blobs"]) == 4
    assert len(row["writes"]) == WRITES_PER_CHECKPOINT


async def test_latest_read_is_not_quadratic_with_a_plan_cached_on_empty_tables(
    empty_tables: asyncpg.Connection,
) -> None:
    conn = empty_tables
    await conn.execute("SET plan_cache_mode = force_generic_plan")
    await prepare(conn, "latest", latest_query(), "uuid, text")
    await execute(conn, "latest", [literal(uuid.uuid4()), "''"])  # plan made and cached empty
    data = await load(conn)
    args = [literal(data.long_session), "''"]

    plan = await explain(conn, "latest", args)
    assert await generic_plans(conn, "latest") >= 1  # the plan made on the empty tables
    assert_subqueries_run_once(plan)
    [row] = await execute(conn, "latest", args)
    check_row(row, data, data.latest_id)


async def test_by_id_read_is_not_quadratic_with_a_plan_cached_on_empty_tables(
    empty_tables: asyncpg.Connection,
) -> None:
    conn = empty_tables
    await conn.execute("SET plan_cache_mode = force_generic_plan")
    await prepare(conn, "by_id", by_id_query(), "uuid, text, text")
    await execute(conn, "by_id", [literal(uuid.uuid4()), "''", "'x'"])
    data = await load(conn)
    args = [literal(data.long_session), "''", literal(data.middle_id)]

    plan = await explain(conn, "by_id", args)
    assert await generic_plans(conn, "by_id") >= 1
    assert_subqueries_run_once(plan)
    [row] = await execute(conn, "by_id", args)
    check_row(row, data, data.middle_id)


@pytest.mark.parametrize("read", ["latest", "by_id", "latest_with_tail", "by_id_with_tail"])
@pytest.mark.parametrize("analyzed", [False, True], ids=["vacuumed-empty-stats", "analyzed"])
@pytest.mark.parametrize("mode", ["force_generic_plan", "force_custom_plan"])
async def test_reads_are_key_lookups_when_planned_on_loaded_tables(
    empty_tables: asyncpg.Connection, read: str, analyzed: bool, mode: str
) -> None:
    conn = empty_tables
    data = await load(conn)
    if analyzed:
        for table in TABLES:
            await conn.execute(f"ANALYZE {table}")
    await conn.execute(f"SET plan_cache_mode = {mode}")
    if read == "latest":
        await prepare(conn, "q", latest_query(), "uuid, text")
        args, expected = [literal(data.long_session), "''"], data.latest_id
    elif read == "latest_with_tail":  # a worker whose copy holds seqs [0, 2)
        await prepare(conn, "q", sql.SELECT_LATEST_TUPLE_WITH_TAIL, "uuid, text, integer")
        args, expected = [literal(data.long_session), "''", "2"], data.latest_id
    elif read == "by_id_with_tail":
        await prepare(conn, "q", sql.SELECT_TUPLE_BY_ID_WITH_TAIL, "uuid, text, text, integer")
        args = [literal(data.long_session), "''", literal(data.middle_id), "2"]
        expected = data.middle_id
    else:
        await prepare(conn, "q", by_id_query(), "uuid, text, text")
        args = [literal(data.long_session), "''", literal(data.middle_id)]
        expected = data.middle_id

    plan = await explain(conn, "q", args)
    assert_checkpoint_key_lookup(plan)
    assert_subqueries_run_once(plan)
    [row] = await execute(conn, "q", args)
    check_row(row, data, expected)
