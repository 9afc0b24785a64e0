"""A writer without a lease (LangGraph Studio, a script) can't fork a session under a
running API turn: its writes are refused while the turn holds the session's lease, with
nothing stored, and go through once the lease is released or has expired."""

from __future__ import annotations

import uuid

import asyncpg
import pytest
from langchain_core.messages import HumanMessage

from src.agent.memory import ConversationCheckpointer, session_id_for
from src.agent.memory.fencing import SessionLeasedError
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
    with pytest.raises(SessionLeasedError, match="a turn of the API is running"):
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


async def test_without_the_apps_lease_table_nothing_is_checked(empty_dsn: str) -> None:
    """The checkpointer as a library (no `turn_leases` table) writes as before."""
    async with ConversationCheckpointer.from_dsn(empty_dsn, min_size=1, max_size=2) as saver:
        graph, thread = chat_graph(saver), str(uuid.uuid4())
        config = {"configurable": {"thread_id": thread}}
        await graph.ainvoke({"messages": [HumanMessage("hello")]}, config)
        assert len((await graph.aget_state(config)).values["messages"]) == 2
