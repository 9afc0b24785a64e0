"""Every row of a session goes with its `conversations` row, whatever deletes it and
whatever writes it meanwhile: no table with a `session_id` is left holding rows of a
conversation that is gone (orphans), neither after any delete path nor after a delete that
races a write (each race made deterministic: one side holds its transaction open until the
other is seen waiting for it, or done)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import uuid
from collections.abc import Awaitable, Callable

import asyncpg
import pytest

from src.agent.memory import (
    ConversationCheckpointer,
    PostgresMemoryStore,
    session_id_for,
    thread_ops,
)
from src.agent.memory import sql as memory_sql
from tests.session_rows import (
    CASCADING_KEYS,
    CHILDREN,
    DELETE_PATHS,
    POPULATE,
    TRIGGERS,
    child_tables,
    orphans,
    populate,
    rows_of,
)


async def test_every_table_of_a_session_goes_with_its_conversation(empty_dsn: str) -> None:
    """Each table with a `session_id` (the checkpointer's schema alone) is emptied of a
    deleted conversation's rows, by a cascading foreign key or by the trigger on
    `conversations` whose function names it, on DELETE and on TRUNCATE alike."""
    store = PostgresMemoryStore(empty_dsn, min_size=1, max_size=2)
    await store.initialize()
    await store.close()
    conn = await asyncpg.connect(empty_dsn)
    try:
        children = await child_tables(conn)
        keyed = {r["name"] for r in await conn.fetch(CASCADING_KEYS)}
        triggers = await conn.fetch(TRIGGERS)
        sid = uuid.uuid4()
        await populate(conn, sid)
        with contextlib.suppress(asyncpg.FeatureNotSupportedError):  # refused by a key
            await conn.execute("TRUNCATE conversations")
        left = await orphans(conn, [sid])
    finally:
        await conn.close()
    assert children == set(POPULATE) - {"conversations"}
    assert children == set(CHILDREN)
    for kind in ("on_delete", "on_truncate"):
        named = {
            t
            for t in children
            if any(re.search(rf"\b{t}\b", r["prosrc"]) for r in triggers if r[kind])
        }
        assert children - keyed - named == set(), f"{kind}: not emptied"
    assert left == {}


@pytest.mark.parametrize("path", sorted(DELETE_PATHS))
async def test_every_delete_path_leaves_no_row_of_the_session(
    path: str, saver: ConversationCheckpointer, db: asyncpg.Connection
) -> None:
    """Thread delete, the API's erase (TTL sweep, forget: `delete_sessions`), prune and a
    plain DELETE each remove the session's rows from every table, and no other's."""
    thread, other = f"rows-{uuid.uuid4()}", f"rows-{uuid.uuid4()}"
    sid, kept = session_id_for(thread), session_id_for(other)
    await populate(db, sid)
    await populate(db, kept)
    assert set((await rows_of(db, [sid])).values()) == {1}
    await DELETE_PATHS[path](saver, sid, thread)
    assert await db.fetchval("SELECT count(*) FROM conversations WHERE session_id = $1", sid) == 0
    assert set((await rows_of(db, [sid])).values()) == {0}
    assert set((await rows_of(db, [kept])).values()) == {1}


Step = Callable[[asyncpg.Connection, uuid.UUID], Awaitable[object]]


async def _put_writes(conn: asyncpg.Connection, sid: uuid.UUID) -> None:
    call = memory_sql.PUT_WRITES
    args = call.args(
        session_id=sid,
        checkpoint_ns="",
        checkpoint_id="c2",
        task_id="t2",
        task_path="",
        idxs=[0],
        channels=["x"],
        types=["bytes"],
        blobs=[b"1"],
        replace=False,
        lease=None,
        run_stops=False,
    )
    await conn.fetchrow(call.text, *args)


async def _put_checkpoint(conn: asyncpg.Connection, sid: uuid.UUID) -> None:
    call = memory_sql.PUT_CHECKPOINT
    checkpoint = json.dumps({"channel_versions": {"x": "2"}})
    args = call.args(
        session_id=sid,
        checkpoint_ns="",
        checkpoint_id="c2",
        parent_checkpoint_id="c1",
        thread_id=str(sid),
        checkpoint=checkpoint,
        metadata="{}",
        channels=["x"],
        versions=["2"],
        types=["bytes"],
        blobs=[b"2"],
        transcript_channel="messages",
        seqs=None,
        new_messages=None,
        next_seq=0,
        conversation_id=None,
        lease=None,
        run_parent=None,
        run_goes_on=False,
    )
    await conn.fetchrow(call.text, *args)


def _source(sid: uuid.UUID) -> uuid.UUID:
    return uuid.UUID(int=sid.int ^ 1)


async def _prepare_copy(conn: asyncpg.Connection, sid: uuid.UUID) -> None:
    """A thread of its own to copy into the session, which holds no checkpoint."""
    await populate(conn, _source(sid))
    for table in ("checkpoints", "checkpoint_blobs", "checkpoint_writes"):
        await conn.execute(f"DELETE FROM {table} WHERE session_id = $1", sid)


async def _copy_into(conn: asyncpg.Connection, sid: uuid.UUID) -> None:
    await thread_ops.copy_thread(conn, _source(sid), sid, str(sid))


async def _prepare_run(conn: asyncpg.Connection, sid: uuid.UUID) -> None:
    """An older run's checkpoint to show once run r1's goes, and no transcript head."""
    await conn.execute("DELETE FROM transcript_heads WHERE session_id = $1", sid)
    await conn.execute(POPULATE["checkpoints"].replace("c1", "c0").replace("r1", "r0"), sid)


async def _delete_run(conn: asyncpg.Connection, sid: uuid.UUID) -> None:
    """Delete the session's run r1: its transcript is refreshed (`vera_refresh_transcript`)."""
    await thread_ops.delete_runs(conn, ["r1"], "messages")


async def _nothing(conn: asyncpg.Connection, sid: uuid.UUID) -> None:
    pass


# Each write that inserts rows of a session: its preparation, then the write itself.
WRITES: dict[str, tuple[Step, Step]] = {
    "put_writes": (_nothing, _put_writes),
    "put_checkpoint": (_nothing, _put_checkpoint),
    "copy_thread": (_prepare_copy, _copy_into),
    "delete_runs": (_prepare_run, _delete_run),
}


async def blocked_or_done(admin: asyncpg.Connection, pid: int, task: asyncio.Task) -> None:
    """Return once `task` (on backend `pid`) waits for a lock, or has finished."""
    async with asyncio.timeout(30):
        while not task.done():
            waiting = await admin.fetchval(
                "SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = $1", pid
            )
            if waiting:
                return
            await asyncio.sleep(0.01)


@pytest.mark.parametrize("first", ["write", "delete"])
@pytest.mark.parametrize("write", sorted(WRITES))
async def test_a_delete_racing_a_write_leaves_no_orphans(
    write: str, first: str, store: PostgresMemoryStore, database_dsn: str, db: asyncpg.Connection
) -> None:
    """A write (its transaction held open) then a delete of its conversation, or a delete
    (held open) then a write: once both ended, no child row is left without its
    conversation. A write may fail on the missing conversation (the foreign key's
    answer), or recreate it; it may not store rows of a conversation that is gone."""
    sid = uuid.uuid4()
    await populate(db, sid)
    prepare, act = WRITES[write]
    await prepare(db, sid)
    writer, deleter = await asyncpg.connect(database_dsn), await asyncpg.connect(database_dsn)
    holder, other = (writer, deleter) if first == "write" else (deleter, writer)

    async def the_write() -> None:
        await act(writer, sid)

    async def the_delete() -> None:
        await deleter.execute("DELETE FROM conversations WHERE session_id = $1", sid)

    first_step, second_step = (
        (the_write, the_delete) if first == "write" else (the_delete, the_write)
    )
    try:
        held = holder.transaction()
        await held.start()
        await first_step()
        task = asyncio.create_task(second_step())
        await blocked_or_done(db, other.get_server_pid(), task)
        await held.commit()
        try:
            await task
        except asyncpg.ForeignKeyViolationError:
            assert first == "delete"  # the write refused: its conversation is gone
    finally:
        await writer.close()
        await deleter.close()
    assert await orphans(db, [sid]) == {}


async def test_a_delete_in_repeatable_read_is_refused(
    store: PostgresMemoryStore, db: asyncpg.Connection
) -> None:
    """Its snapshot would miss rows a write it waited for committed: the delete is refused
    whole, its conversation and rows kept (READ COMMITTED deletes, the library's, go on)."""
    sid = uuid.uuid4()
    await populate(db, sid)
    with pytest.raises(asyncpg.RaiseError, match="READ COMMITTED only"):
        async with db.transaction(isolation="repeatable_read"):
            await db.execute("DELETE FROM conversations WHERE session_id = $1", sid)
    assert set((await rows_of(db, [sid])).values()) == {1}
    assert await orphans(db, [sid]) == {}
