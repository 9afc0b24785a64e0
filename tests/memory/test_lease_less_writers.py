"""A writer without a lease (LangGraph Studio, a script) can't fork a session under a
running API turn: its writes are refused while the turn holds the session's lease, with
nothing stored, and go through once the lease is released or has expired. A run that
continues from its own previous checkpoint after another writer moved the thread on is
refused too (else its later write would hide the other writer's turn)."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import asyncpg
import pytest
from langchain_core.messages import AIMessage, HumanMessage
from langgraph.graph import END, START, MessagesState, StateGraph

from src.agent.memory import ConversationCheckpointer, PostgresMemoryStore, session_id_for
from src.agent.memory.fencing import LEASE_CONFIG_KEY, SessionLeasedError, StaleRunError
from src.agent.memory.leases import SessionLeases, TakenLease
from tests.api_harness import wait_until
from tests.support import chat_graph, plant_expired_lease


async def hold_lease(db: asyncpg.Connection, thread: str) -> None:
    """What a running API turn holds: an unexpired lease of the session."""
    await db.execute(
        "INSERT INTO turn_leases (session_id, run_id, expires_at) "
        "VALUES ($1, $2, now() + interval '1 minute')",
        session_id_for(thread),
        uuid.uuid4(),
    )


async def checkpoints_of(db: asyncpg.Connection, thread: str) -> int:
    return await db.fetchval(
        "SELECT count(*) FROM checkpoints WHERE session_id = $1", session_id_for(thread)
    )


async def test_a_run_without_a_lease_is_refused_while_a_turn_holds_the_session(
    saver: ConversationCheckpointer, db: asyncpg.Connection
) -> None:
    graph, thread = chat_graph(saver), str(uuid.uuid4())
    config = {"configurable": {"thread_id": thread}}
    await graph.ainvoke({"messages": [HumanMessage("first")]}, config)
    before = await checkpoints_of(db, thread)

    await hold_lease(db, thread)
    with pytest.raises(SessionLeasedError, match="a turn holds its lease"):
        await graph.ainvoke({"messages": [HumanMessage("from Studio")]}, config)
    assert await checkpoints_of(db, thread) == before
    texts = [m.content for m in (await graph.aget_state(config)).values["messages"]]
    assert "from Studio" not in texts

    await db.execute("DELETE FROM turn_leases WHERE session_id = $1", session_id_for(thread))
    await graph.ainvoke({"messages": [HumanMessage("from Studio")]}, config)
    texts = [m.content for m in (await graph.aget_state(config)).values["messages"]]
    assert texts[-2] == "from Studio"


async def test_an_expired_lease_does_not_block_a_writer_without_one(
    saver: ConversationCheckpointer, db: asyncpg.Connection
) -> None:
    """A worker that died mid-turn leaves an expired lease: it holds nothing."""
    graph, thread = chat_graph(saver), str(uuid.uuid4())
    await plant_expired_lease(db, thread)
    await graph.ainvoke(
        {"messages": [HumanMessage("hello")]}, {"configurable": {"thread_id": thread}}
    )
    assert await checkpoints_of(db, thread) > 0


async def test_the_library_alone_fences_writes_with_its_own_leases(empty_dsn: str) -> None:
    """The checkpointer as a library (no app, no app tables): a run holding the session's
    lease (`SessionLeases`) writes, a writer without it is refused until it is released."""
    async with ConversationCheckpointer.from_dsn(empty_dsn, min_size=1, max_size=2) as saver:
        graph, thread = chat_graph(saver), str(uuid.uuid4())
        leases, holder = SessionLeases(saver.store), uuid.uuid4()
        assert await leases.take(session_id_for(thread), holder, 60) == TakenLease(False)
        assert await leases.take(session_id_for(thread), uuid.uuid4(), 60) is None
        leased = {"configurable": {"thread_id": thread, LEASE_CONFIG_KEY: str(holder)}}
        await graph.ainvoke({"messages": [HumanMessage("with the lease")]}, leased)
        plain = {"configurable": {"thread_id": thread}}
        with pytest.raises(SessionLeasedError):
            await graph.ainvoke({"messages": [HumanMessage("without")]}, plain)
        assert await leases.held(session_id_for(thread))
        await leases.release(session_id_for(thread), holder)
        await graph.ainvoke({"messages": [HumanMessage("without")]}, plain)
        texts = [m.content for m in (await graph.aget_state(plain)).values["messages"]]
        assert texts[::2] == ["with the lease", "without"]


def gated_graph(checkpointer: ConversationCheckpointer, gate: asyncio.Event) -> Any:
    """One node that waits for `gate` before answering (a slow model)."""

    async def slow(state: MessagesState) -> dict:
        await gate.wait()
        return {"messages": [AIMessage("late answer")]}

    builder = StateGraph(MessagesState)
    builder.add_node("slow", slow)
    builder.add_edge(START, "slow")
    builder.add_edge("slow", END)
    return builder.compile(checkpointer=checkpointer)


async def test_a_run_is_refused_once_another_writer_continued_the_thread(
    store: PostgresMemoryStore, db: asyncpg.Connection
) -> None:
    """Run A (a Studio run, one process) waits on its model while writer B (another
    process: an API turn that started after A's question was stored) completes a turn on
    the thread; A's answer would fork the thread from under B's turn and hide it from the
    transcript: it is refused, and the transcript keeps B's turn."""
    thread, gate = str(uuid.uuid4()), asyncio.Event()
    config = {"configurable": {"thread_id": thread}}
    slow = gated_graph(ConversationCheckpointer(store), gate)
    other = chat_graph(ConversationCheckpointer(store))
    run_a = asyncio.create_task(slow.ainvoke({"messages": [HumanMessage("from A")]}, config))

    async def question_stored() -> bool:  # A's step 0: the question, before the model
        return await checkpoints_of(db, thread) >= 2

    await wait_until(question_stored)
    await other.ainvoke({"messages": [HumanMessage("from B")]}, config)
    gate.set()
    with pytest.raises(StaleRunError, match="another writer continued the thread"):
        await run_a
    transcript = await db.fetchval(
        "SELECT messages::text FROM conversations WHERE session_id = $1", session_id_for(thread)
    )
    texts = [m["content"] for m in json.loads(transcript)]
    assert texts[:2] == ["from A", "from B"] and "late answer" not in texts
    assert len(texts) == 3  # B's answer


async def test_a_fork_from_an_older_checkpoint_is_not_refused(
    saver: ConversationCheckpointer,
) -> None:
    """Time travel (Studio's "fork"): a run from an older checkpoint of the same process."""
    graph, thread = chat_graph(saver), str(uuid.uuid4())
    config = {"configurable": {"thread_id": thread}}
    await graph.ainvoke({"messages": [HumanMessage("one")]}, config)
    older = (await graph.aget_state(config)).config
    await graph.ainvoke({"messages": [HumanMessage("two")]}, config)
    await graph.ainvoke({"messages": [HumanMessage("two, edited")]}, older)
    texts = [m.content for m in (await graph.aget_state(config)).values["messages"]]
    assert texts[0] == "one" and texts[2] == "two, edited" and "two" not in texts


async def test_a_fork_from_this_processs_last_checkpoint_after_another_writer_is_not_refused(
    store: PostgresMemoryStore,
) -> None:
    """Studio's time travel to the checkpoint it wrote last, after an API turn moved the
    thread on: a new run (fork with input, state edit, re-run) is not the stale run."""
    thread = str(uuid.uuid4())
    config = {"configurable": {"thread_id": thread}}
    studio = chat_graph(ConversationCheckpointer(store))
    api = chat_graph(ConversationCheckpointer(store))
    await studio.ainvoke({"messages": [HumanMessage("from Studio")]}, config)
    mine = (await studio.aget_state(config)).config
    await api.ainvoke({"messages": [HumanMessage("from the API")]}, config)
    await studio.ainvoke({"messages": [HumanMessage("fork")]}, mine)
    texts = [m.content for m in (await studio.aget_state(config)).values["messages"]]
    assert texts[0] == "from Studio" and texts[2] == "fork" and "from the API" not in texts
    await api.ainvoke({"messages": [HumanMessage("from the API")]}, config)
    mine = (await studio.aget_state(config)).config
    await studio.ainvoke({"messages": [HumanMessage("again")]}, config)
    await api.ainvoke({"messages": [HumanMessage("and the API")]}, config)
    await studio.aupdate_state(mine, {"messages": [HumanMessage("edited", id="e-1")]})
    assert (await studio.aget_state(config)).values["messages"][-1].id == "e-1"
