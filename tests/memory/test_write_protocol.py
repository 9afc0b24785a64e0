"""The steps of a write, on a real PostgreSQL: what each one sees when writers of a session
take turns, and what a task's pending writes keep."""

from __future__ import annotations

import asyncio
import json
import uuid

import asyncpg
import pytest
from langchain_core.messages import HumanMessage

from src.agent.memory import ConversationCheckpointer, PostgresMemoryStore, session_id_for, sql
from src.agent.memory.fencing import LEASE_CONFIG_KEY, LeaseLostError, SessionLeasedError
from tests.support import chat_graph


def put_after(
    sid: uuid.UUID, conversation_id: uuid.UUID, shown: list[int], next_seq: int
) -> list[object]:
    """`vera_put_checkpoint`'s arguments: a root checkpoint that appends one new message to
    the `shown` transcript, planned from a copy believed to hold seqs [0, next_seq) (stored
    only if the head agrees)."""
    return sql.PUT_CHECKPOINT.args(
        session_id=sid,
        checkpoint_ns="",
        checkpoint_id="9" * 32,
        parent_checkpoint_id=None,
        thread_id=str(sid),
        checkpoint=json.dumps({"channel_versions": {}}),
        metadata="{}",
        channels=[],
        versions=[],
        types=[],
        blobs=[],
        transcript_channel="messages",
        seqs=[*shown, next_seq],
        new_messages=json.dumps([{"role": "user", "content": "late"}]),
        next_seq=next_seq,
        conversation_id=conversation_id,
        lease=None,
        run_parent=None,
        run_goes_on=False,
    )


async def test_a_writer_that_waited_for_the_lock_reads_the_head_committed_meanwhile(
    saver: ConversationCheckpointer, store: PostgresMemoryStore, database_dsn: str
) -> None:
    """The head is read once the row lock is granted: a writer that waited sees what the
    one before it committed (read in the locking statement, it would see the head as it
    was before the wait, and move it from there)."""
    thread = str(uuid.uuid4())
    await chat_graph(saver).ainvoke(
        {"messages": [HumanMessage("hi")]}, {"configurable": {"thread_id": thread}}
    )
    sid = session_id_for(thread)
    first, second = await asyncpg.connect(database_dsn), await asyncpg.connect(database_dsn)
    try:
        shown, before = await first.fetchrow(
            "SELECT seqs, next_seq FROM transcript_heads WHERE session_id = $1", sid
        )
        async with first.transaction():
            lock = sql.LOCK_CONVERSATION
            conversation_id = await first.fetchval(
                lock.text, *lock.args(session_id=sid, lock=True)
            )  # holds the row lock
            await first.execute(
                "UPDATE transcript_heads SET next_seq = next_seq + 5 WHERE session_id = $1", sid
            )
            put = sql.PUT_CHECKPOINT.text
            waiting = asyncio.create_task(
                second.fetchrow(put, *put_after(sid, conversation_id, shown, before + 5))
            )
            await asyncio.sleep(0.3)
            assert not waiting.done(), "the second writer must wait for the row lock"
        assert (await asyncio.wait_for(waiting, 10))["stored"], "planned against the new head"
        assert (
            await first.fetchval("SELECT next_seq FROM transcript_heads WHERE session_id = $1", sid)
            == before + 6
        )
    finally:
        await first.close()
        await second.close()


async def test_a_tasks_first_write_of_an_index_stays_and_special_writes_replace(
    saver: ConversationCheckpointer, db: asyncpg.Connection
) -> None:
    thread = str(uuid.uuid4())
    config = {"configurable": {"thread_id": thread, "checkpoint_ns": "", "checkpoint_id": "c1"}}
    await saver.aput_writes(config, [("messages", "first")], "task")
    await saver.aput_writes(config, [("messages", "again")], "task")
    await saver.aput_writes(config, [("__error__", "boom")], "task")
    await saver.aput_writes(config, [("__error__", "boom, again")], "task")
    rows = await db.fetch(
        "SELECT idx, channel, type, blob FROM checkpoint_writes WHERE session_id = $1 ORDER BY idx",
        session_id_for(thread),
    )
    values = {
        (r["idx"], r["channel"]): saver.serde.loads_typed((r["type"], r["blob"])) for r in rows
    }
    assert values == {(-1, "__error__"): "boom, again", (0, "messages"): "first"}


async def test_a_sessions_row_is_committed_before_its_first_write(
    saver: ConversationCheckpointer, db: asyncpg.Connection
) -> None:
    """LangGraph stores a turn's first checkpoint and its pending writes concurrently: the
    conversation row both need is created in a transaction of its own, so that neither
    waits for the end of the other's whole write (issue 28)."""
    thread = str(uuid.uuid4())
    config = {"configurable": {"thread_id": thread, "checkpoint_ns": "", "checkpoint_id": "c1"}}
    await saver.aput_writes(config, [("messages", "first")], "task")
    row = await db.fetchrow(
        """SELECT c.xmin::text AS created,
            (SELECT w.xmin::text FROM checkpoint_writes w WHERE w.session_id = c.session_id)
                AS written
        FROM conversations c WHERE c.session_id = $1""",
        session_id_for(thread),
    )
    assert row["written"] is not None
    assert row["created"] != row["written"]


async def test_a_fenced_first_write_creates_no_conversation(
    saver: ConversationCheckpointer, db: asyncpg.Connection
) -> None:
    """The row made ahead of a session's first write is made only for a writer that may
    write: a run whose lease is not the session's brings no deleted session back."""
    thread = str(uuid.uuid4())
    sid = session_id_for(thread)
    await db.execute(
        "INSERT INTO turn_leases VALUES ($1, $2, now() + interval '1 hour')", sid, uuid.uuid4()
    )
    try:
        config = {
            "configurable": {
                "thread_id": thread,
                "checkpoint_ns": "",
                "checkpoint_id": "c1",
                LEASE_CONFIG_KEY: str(uuid.uuid4()),
            }
        }
        with pytest.raises(LeaseLostError):
            await saver.aput_writes(config, [("messages", "stale")], "task")
        config["configurable"].pop(LEASE_CONFIG_KEY)
        with pytest.raises(SessionLeasedError):
            await saver.aput_writes(config, [("messages", "no lease")], "task")
        assert not await db.fetchval(
            "SELECT count(*) FROM conversations WHERE session_id = $1", sid
        )
    finally:
        await db.execute("DELETE FROM turn_leases WHERE session_id = $1", sid)
