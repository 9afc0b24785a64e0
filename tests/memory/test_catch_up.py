"""A worker that missed turns (issue 28): two savers, each on its own pool as two processes
would be, take turns on one thread. The one whose cached log is behind reads what it
missed with its checkpoint, in one statement, and what it then holds and reads equals a
cold read's, after forks, edits, rollbacks, prunes, retention and a thread recreated."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from langchain_core.messages import HumanMessage, RemoveMessage

from src.agent.memory import ConversationCheckpointer, PostgresMemoryStore, sql
from src.agent.memory.retention import RetentionPolicy
from src.agent.memory.threads import session_id_for
from tests.database import initialized
from tests.support import cfg, chat_graph, run_turns

# This connection's own prepared statements and how often each ran.
PREPARED = """SELECT statement, generic_plans + custom_plans AS runs
FROM pg_prepared_statements WHERE statement NOT LIKE '%pg_prepared_statements%'"""


@pytest.fixture
async def other_store(database_dsn: str) -> AsyncIterator[PostgresMemoryStore]:
    """The second worker's store: its own pool of one connection."""
    async with initialized(PostgresMemoryStore(database_dsn, min_size=1, max_size=1)) as store:
        yield store


@pytest.fixture
def other(other_store: PostgresMemoryStore) -> ConversationCheckpointer:
    return ConversationCheckpointer(other_store)


async def _runs(store: PostgresMemoryStore) -> dict[str, int]:
    async with store.pool.acquire() as conn:
        return {r["statement"]: r["runs"] for r in await conn.fetch(PREPARED)}


async def assert_as_cold(
    saver: ConversationCheckpointer, store: PostgresMemoryStore, thread: str
) -> None:
    """`saver`'s latest checkpoint, its history and its cached log of the thread equal what
    a saver that caches nothing reads."""
    cold = ConversationCheckpointer(store)
    mine, theirs = await saver.aget_tuple(cfg(thread)), await cold.aget_tuple(cfg(thread))
    assert (mine is None) == (theirs is None)
    if mine is None or theirs is None:
        return
    assert mine.checkpoint == theirs.checkpoint
    assert mine.metadata == theirs.metadata
    assert mine.pending_writes == theirs.pending_writes
    sid = session_id_for(thread)
    held, read = saver.message_logs.peek(sid), cold.message_logs.peek(sid)
    assert held is not None and read is not None
    assert held.conversation_id == read.conversation_id
    assert held.elements == read.elements
    assert [m.fields for m in held.messages] == [m.fields for m in read.messages]
    history = [(t.config, t.checkpoint) async for t in saver.alist(cfg(thread))]
    assert history == [(t.config, t.checkpoint) async for t in cold.alist(cfg(thread))]


def _messages(state: Any) -> list[tuple[str | None, Any]]:
    return [(m.id, m.content) for m in state.values.get("messages", [])]


async def test_a_worker_that_missed_turns_reads_them_with_its_checkpoint_in_one_statement(
    saver: ConversationCheckpointer,
    other: ConversationCheckpointer,
    other_store: PostgresMemoryStore,
) -> None:
    thread = str(uuid.uuid4())
    await run_turns(chat_graph(other), thread, 2)  # the other worker's copy: 4 messages
    await run_turns(chat_graph(saver), thread, 3)  # which then misses 6
    before = await _runs(other_store)

    state = await chat_graph(other).aget_state(cfg(thread))

    after = await _runs(other_store)
    assert len(state.values["messages"]) == 10
    ran = {q: after[q] - before.get(q, 0) for q in after if after[q] != before.get(q, 0)}
    assert ran == {sql.SELECT_LATEST_TUPLE_WITH_TAIL: 1}
    log = other.message_logs.peek(session_id_for(thread))
    assert log is not None and len(log.messages) == 10
    # Nothing missed: the same one statement, its tail empty.
    await other.aget_tuple(cfg(thread))
    again = await _runs(other_store)
    assert sum(again.values()) == sum(after.values()) + 1


async def test_a_time_travel_read_of_a_worker_that_missed_turns_is_one_statement(
    saver: ConversationCheckpointer,
    other: ConversationCheckpointer,
    other_store: PostgresMemoryStore,
) -> None:
    """A read by checkpoint id (a fork starts from one) brings the missed messages too."""
    thread = str(uuid.uuid4())
    await run_turns(chat_graph(other), thread, 1)
    await run_turns(chat_graph(saver), thread, 2)
    latest = await saver.aget_tuple(cfg(thread))
    assert latest is not None
    before = await _runs(other_store)

    read = await other.aget_tuple(latest.config)

    after = await _runs(other_store)
    ran = {q: after[q] - before.get(q, 0) for q in after if after[q] != before.get(q, 0)}
    assert ran == {sql.SELECT_TUPLE_BY_ID_WITH_TAIL: 1}
    assert read is not None and read.checkpoint == latest.checkpoint


async def test_alternating_turns_read_as_cold(
    saver: ConversationCheckpointer,
    store: PostgresMemoryStore,
    other: ConversationCheckpointer,
) -> None:
    thread = str(uuid.uuid4())
    workers = (chat_graph(saver), chat_graph(other))
    for turn in range(6):
        await run_turns(workers[turn % 2], thread, 1 + turn % 2)
        await assert_as_cold(other if turn % 2 == 0 else saver, store, thread)
    state = await workers[0].aget_state(cfg(thread))
    assert len(state.values["messages"]) == 18


async def cached(
    saver: ConversationCheckpointer, other: ConversationCheckpointer, turns: int
) -> tuple[str, Any, Any]:
    """A new thread of `turns` turns by `saver`'s graph, which `other`'s graph then read (the
    other worker caches the log): (the thread, `saver`'s graph, `other`'s)."""
    thread = str(uuid.uuid4())
    graph, stale = chat_graph(saver), chat_graph(other)
    await run_turns(graph, thread, turns)
    await stale.aget_state(cfg(thread))
    return thread, graph, stale


async def test_catch_up_after_forks_and_a_switched_branch(
    saver: ConversationCheckpointer,
    store: PostgresMemoryStore,
    other: ConversationCheckpointer,
) -> None:
    thread, graph, stale = await cached(saver, other, 3)
    history = [s async for s in graph.aget_state_history(cfg(thread))]
    after_first = next(s for s in history if len(s.values.get("messages", [])) == 2)
    # A run from an older checkpoint (a fork), then an edit there, by the first worker.
    await graph.ainvoke({"messages": [HumanMessage("fork", id="f1")]}, after_first.config)
    await assert_as_cold(other, store, thread)
    first_id = after_first.values["messages"][0].id
    edited = await graph.aupdate_state(
        after_first.config, {"messages": [HumanMessage("edited", id=first_id)]}
    )
    await graph.ainvoke({"messages": [HumanMessage("on the edit", id="e1")]}, edited)
    await assert_as_cold(other, store, thread)
    tips = await saver.branches(thread)
    await saver.aswitch_branch(thread, tips[-1].checkpoint_id)
    await assert_as_cold(other, store, thread)
    await run_turns(stale, thread, 1)  # the caught-up worker writes on
    await assert_as_cold(saver, store, thread)
    assert _messages(await stale.aget_state(cfg(thread))) == _messages(
        await chat_graph(ConversationCheckpointer(store)).aget_state(cfg(thread))
    )


async def test_catch_up_after_removed_and_replaced_messages(
    saver: ConversationCheckpointer,
    store: PostgresMemoryStore,
    other: ConversationCheckpointer,
) -> None:
    thread = str(uuid.uuid4())
    graph, stale = chat_graph(saver), chat_graph(other)
    await graph.ainvoke({"messages": [HumanMessage("first", id="q1")]}, cfg(thread))
    await graph.ainvoke({"messages": [HumanMessage("second", id="q2")]}, cfg(thread))
    await stale.aget_state(cfg(thread))
    await graph.aupdate_state(cfg(thread), {"messages": [RemoveMessage(id="q1")]})
    await assert_as_cold(other, store, thread)
    await graph.aupdate_state(cfg(thread), {"messages": [HumanMessage("second, again", id="q2")]})
    await assert_as_cold(other, store, thread)
    contents = [m.content for m in (await stale.aget_state(cfg(thread))).values["messages"]]
    assert "first" not in contents and "second, again" in contents
    await run_turns(stale, thread, 1)
    await assert_as_cold(saver, store, thread)


async def test_catch_up_after_a_rollback_a_prune_and_retention(
    saver: ConversationCheckpointer,
    store: PostgresMemoryStore,
    other: ConversationCheckpointer,
) -> None:
    thread, graph, stale = await cached(saver, other, 2)
    run_id = str(uuid.uuid4())
    question = {"messages": [HumanMessage("rolled back", id="r1")]}
    await graph.ainvoke(question, {**cfg(thread), "metadata": {"run_id": run_id}})
    await saver.adelete_for_runs([run_id])  # the run's checkpoints go: a rollback
    await assert_as_cold(other, store, thread)
    contents = [m.content for m in _state_messages(await stale.aget_state(cfg(thread)))]
    assert "rolled back" not in contents and len(contents) == 4
    await run_turns(graph, thread, 2)
    await saver.aprune([thread], strategy="keep_latest")
    await assert_as_cold(other, store, thread)
    await run_turns(graph, thread, 2)
    await saver.aretain(thread, RetentionPolicy(keep_latest=2))
    await assert_as_cold(other, store, thread)
    await run_turns(stale, thread, 1)
    await assert_as_cold(saver, store, thread)


def _state_messages(state: Any) -> list[Any]:
    return list(state.values.get("messages", []))


async def test_catch_up_after_the_thread_was_deleted_and_recreated(
    saver: ConversationCheckpointer,
    store: PostgresMemoryStore,
    other: ConversationCheckpointer,
) -> None:
    thread, graph, stale = await cached(saver, other, 3)
    await saver.adelete_thread(thread)
    assert (await other.aget_tuple(cfg(thread))) is None
    await run_turns(stale, thread, 1)  # recreated by the worker that cached the old one
    await saver.adelete_thread(thread)
    await graph.ainvoke({"messages": [HumanMessage("anew", id="n1")]}, cfg(thread))
    await assert_as_cold(other, store, thread)
    assert _messages(await stale.aget_state(cfg(thread)))[0] == ("n1", "anew")
    assert len(_state_messages(await stale.aget_state(cfg(thread)))) == 2


async def test_concurrent_reads_of_a_worker_that_missed_turns_catch_up_once_and_exactly(
    saver: ConversationCheckpointer,
    store: PostgresMemoryStore,
    other_store: PostgresMemoryStore,
) -> None:
    """Reads of one saver, concurrent on a pool of several connections, each with the
    tail from the copy's length: the copy is extended once, as a cold read holds it."""
    stale = ConversationCheckpointer(store)  # the fixture store's pool: 10 connections
    thread = str(uuid.uuid4())
    await run_turns(chat_graph(stale), thread, 2)
    for _ in range(3):
        await run_turns(chat_graph(ConversationCheckpointer(other_store)), thread, 2)
        reads = await asyncio.gather(*(stale.aget_tuple(cfg(thread)) for _ in range(6)))
        assert len({id(t) for t in reads}) == 6
        assert all(t is not None and t.checkpoint == reads[0].checkpoint for t in reads)
        await assert_as_cold(stale, store, thread)
