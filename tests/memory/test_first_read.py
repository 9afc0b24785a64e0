"""A new process's first read (issue 28): what it sends the server on a connection the pool
has just opened, counted on the server (`pg_prepared_statements`: the statements this
connection prepared, how often each ran, and with which plans) and at asyncpg's type
introspection.

PostgreSQL plans a prepared statement anew at each of its first five executions (custom
plans) before it weighs its generic plan, so a pool of 20 connections planned the read of
a short conversation again at most of its turns: the pool's init runs each read of
`sql.WARM_READS` that many times when a connection opens (one round trip each), so the
reads it then serves plan nothing; and asyncpg keeps the statements prepared for the
connection's life (by default it drops each one 300 s after preparing it, to be parsed and
custom-planned five times again)."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from src.agent.memory import ConversationCheckpointer, PostgresMemoryStore, sql
from src.agent.memory.codecs import BUILTIN_ARRAY_TYPES
from tests.support import cfg, chat_graph, run_turns

# This connection's own prepared statements (the query itself left out).
PREPARED = """SELECT statement, generic_plans + custom_plans AS runs
FROM pg_prepared_statements WHERE statement NOT LIKE '%pg_prepared_statements%'"""
# The warm reads' plans on this connection.
PLANS = """SELECT statement, generic_plans, custom_plans FROM pg_prepared_statements
WHERE statement = ANY($1::text[])"""
READS = [query for query, _ in sql.WARM_READS]


@pytest.fixture
def introspections(monkeypatch: pytest.MonkeyPatch) -> list[set[int]]:
    """The type OIDs of every introspection asyncpg runs meanwhile (a catalogue query,
    plus two `jit` round trips when the server has JIT)."""
    seen: list[set[int]] = []
    original = asyncpg.Connection._introspect_types

    async def spy(self: asyncpg.Connection, oids: Any, *args: Any) -> Any:
        seen.append(set(oids))
        return await original(self, oids, *args)

    monkeypatch.setattr(asyncpg.Connection, "_introspect_types", spy)
    return seen


@pytest.fixture
async def new_process(database_dsn: str) -> AsyncIterator[PostgresMemoryStore]:
    """A store as a new process opens it, on one pooled connection opened after start-up
    (the one start-up used is replaced: nothing prepared, no type seen)."""
    store = PostgresMemoryStore(database_dsn, min_size=1, max_size=1)
    await store.initialize()
    await store.pool.expire_connections()
    try:
        yield store
    finally:
        await store.close()


async def _statements(store: PostgresMemoryStore) -> dict[str, int]:
    """The statements the store's one connection has prepared, and how often each ran."""
    async with store.pool.acquire() as conn:
        return {r["statement"]: r["runs"] for r in await conn.fetch(PREPARED)}


async def test_first_read_of_a_new_connection_is_one_round_trip(
    saver: ConversationCheckpointer,
    new_process: PostgresMemoryStore,
    introspections: list[set[int]],
) -> None:
    """The connection opens with the reads prepared; the first `aget_state` (nothing
    cached) then runs one statement, for the checkpoint and the whole log."""
    thread = str(uuid.uuid4())
    await run_turns(chat_graph(saver), thread, 3)
    introspections.clear()
    before = await _statements(new_process)  # the pool opens its connection

    state = await chat_graph(ConversationCheckpointer(new_process)).aget_state(cfg(thread))

    after = await _statements(new_process)
    assert len(state.values["messages"]) == 6
    assert introspections == []
    assert after.keys() == before.keys()  # nothing prepared by the read
    assert [q for q in after if after[q] != before[q]] == [sql.SELECT_LATEST_TUPLE_WITH_LOG]
    assert after[sql.SELECT_LATEST_TUPLE_WITH_LOG] == before[sql.SELECT_LATEST_TUPLE_WITH_LOG] + 1
    # Read again through another fresh saver: still one statement.
    await ConversationCheckpointer(new_process).aget_tuple(cfg(thread))
    again = await _statements(new_process)
    assert sum(again.values()) == sum(after.values()) + 1


async def _plans(store: PostgresMemoryStore) -> dict[str, tuple[int, int]]:
    """Each warm read's (generic, custom) plan counts on the store's one connection."""
    async with store.pool.acquire() as conn:
        rows = await conn.fetch(PLANS, READS)
    return {r["statement"]: (r["generic_plans"], r["custom_plans"]) for r in rows}


async def test_the_reads_a_new_connection_serves_plan_nothing(
    saver: ConversationCheckpointer, new_process: PostgresMemoryStore
) -> None:
    """Cold reads (fresh savers), reads of a cached session and of a namespace: each one
    runs the plan the connection made when it opened, no custom plan."""
    thread = str(uuid.uuid4())
    await run_turns(chat_graph(saver), thread, 3)
    before = await _plans(new_process)  # the pool opens its connection
    cached = ConversationCheckpointer(new_process)
    reads = 8
    for _ in range(reads):
        assert await ConversationCheckpointer(new_process).aget_tuple(cfg(thread))
        assert await cached.aget_tuple(cfg(thread))
        subgraph = {"configurable": {"thread_id": thread, "checkpoint_ns": "child:1"}}
        assert await cached.aget_tuple(subgraph) is None

    after = await _plans(new_process)
    assert before.keys() == after.keys() == set(READS)
    for query in READS:
        (generic, custom), (generic_then, custom_then) = before[query], after[query]
        assert custom_then == custom, query  # no read planned anew
        assert generic_then >= generic + reads - 1, query


async def test_pooled_connections_keep_their_statements_prepared(
    new_process: PostgresMemoryStore,
) -> None:
    """asyncpg's statement cache drops no statement after a time (`0`: never)."""
    async with new_process.pool.acquire() as conn:
        assert conn._con._stmt_cache.get_max_lifetime() == 0  # type: ignore[union-attr]


async def test_every_write_and_read_of_a_new_connection_introspects_nothing(
    new_process: PostgresMemoryStore, introspections: list[set[int]]
) -> None:
    """Turns, the history, a copy and a delete: every array type they send or read is
    registered up front."""
    saver = ConversationCheckpointer(new_process)
    graph = chat_graph(saver)
    thread = str(uuid.uuid4())
    await run_turns(graph, thread, 2)
    assert len([s async for s in graph.aget_state_history(cfg(thread))]) > 2
    copy = str(uuid.uuid4())
    await saver.acopy_thread(thread, copy)
    await saver.adelete_thread(copy)
    assert introspections == []


async def test_builtin_array_types_are_what_the_server_says(
    database_dsn: str, introspections: list[set[int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rows registered up front equal the answers of asyncpg's own introspection, on
    a plain connection (no registration) that meets each type."""
    found: dict[int, dict[str, Any]] = {}
    spy = asyncpg.Connection._introspect_types

    async def keep(self: asyncpg.Connection, oids: Any, *args: Any) -> Any:
        answer = await spy(self, oids, *args)
        found.update((r["oid"], dict(r)) for r in answer[0])
        return answer

    monkeypatch.setattr(asyncpg.Connection, "_introspect_types", keep)
    conn = await asyncpg.connect(database_dsn)
    try:
        for expected in BUILTIN_ARRAY_TYPES:
            await conn.fetchval(f"SELECT NULL::{expected['elemtype_name']}[]")
    finally:
        await conn.close()
    assert len(introspections) == len(BUILTIN_ARRAY_TYPES)
    for expected in BUILTIN_ARRAY_TYPES:
        assert {k: found[expected["oid"]][k] for k in expected} == expected


def test_the_copies_a_cold_read_keeps_share_nothing_with_the_messages_handed_out() -> None:
    """The stored copies a cold read (`take_whole`) keeps share nothing with the messages
    it hands out, empty values included: a message changed in place is told apart."""
    from langchain_core.messages import AIMessage, HumanMessage
    from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

    from src.agent.memory.jsonb import dumps_jsonb
    from src.agent.memory.message_log import MessageLogCache
    from src.agent.memory.transcript import message_to_element

    serde = JsonPlusSerializer()
    messages = [HumanMessage("hi", id="h1"), AIMessage("yes", id="a1")]
    shown = dumps_jsonb([message_to_element(m, serde) for m in messages])
    row = {"conversation_id": uuid.uuid4(), "shown": shown, "seqs": [0, 1]}
    row |= {"other_seqs": None, "others": None}
    log = MessageLogCache(serde).take_whole(uuid.uuid4(), row)  # type: ignore[arg-type]
    assert log is not None
    human, ai = log.message_at(0, serde), log.message_at(1, serde)
    assert [human, ai] == messages
    human.additional_kwargs["changed"] = True
    ai.tool_calls.append({"name": "f", "args": {}, "id": "c1", "type": "tool_call"})
    assert log.messages[0] != human and log.messages[1] != ai
    fresh = [log.message_at(0, serde), log.message_at(1, serde)]
    assert fresh == messages and fresh[0] is not human


async def test_a_cold_read_hands_out_the_messages_validation_builds(
    saver: ConversationCheckpointer, new_process: PostgresMemoryStore
) -> None:
    """Plain messages (built without validation) and rich ones (validated) read cold
    through a fresh saver: each is the very instance the validated rebuild of its stored
    element gives, and equals the message written."""
    from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage

    from src.agent.memory import transcript
    from src.agent.memory.plain_messages import same_instance
    from src.agent.memory.threads import session_id_for

    thread = str(uuid.uuid4())
    written = [
        SystemMessage("be brief", id="s1"),
        HumanMessage("hi", id="h1", name="ana"),
        AIMessage(
            "",
            id="a1",
            tool_calls=[{"name": "f", "args": {"q": 1}, "id": "c1", "type": "tool_call"}],
        ),
        ToolMessage("42", tool_call_id="c1", id="t1"),
        AIMessage("it is 42", id="a2", response_metadata={"model": "m"}),
        HumanMessage("thanks", id="h2"),
    ]
    await chat_graph(saver).aupdate_state(cfg(thread), {"messages": written})

    state = await chat_graph(ConversationCheckpointer(new_process)).aget_state(cfg(thread))

    read = state.values["messages"]
    assert read == written
    async with new_process.pool.acquire() as conn:
        stored = await conn.fetchval(
            "SELECT messages::text FROM conversations WHERE session_id = $1",
            session_id_for(thread),
        )
    saved = dict(transcript.BUILDERS)
    transcript.BUILDERS.clear()  # the validated path only
    try:
        validated = [transcript.element_to_message(e, saver.serde) for e in json.loads(stored)]
    finally:
        transcript.BUILDERS.update(saved)
    assert all(same_instance(a, b) for a, b in zip(read, validated, strict=True))
