"""The memory's contract where it was broken ("Memory: one true history"), against a real server.

Proves that a connection the server kills in the middle of a call is retried once on a
fresh one (and reported as `StorageUnavailableError` when it dies again), that a turn's
lease is still released then, that `aprune` behaves like the official Postgres saver
(refuses a bare string and `DeltaChannel` threads, drops finished subgraph calls), and
that a UUID thread id names one session whatever the case of its hex digits.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import asyncpg
import pytest
from langchain_core.messages import AIMessage, HumanMessage
from langgraph.channels.delta import DeltaChannel
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.types import Command

from src.agent.memory import ConversationCheckpointer, PostgresMemoryStore, session_id_for
from src.agent.memory.store import StorageUnavailableError
from src.agent.memory.threads import _THREAD_NAMESPACE
from src.api.turn_leases import TurnLeases
from tests.support import cfg, chat_graph, run_turns, subgraph_calls_graph

Fn = Callable[[asyncpg.Connection], Awaitable[Any]]


@pytest.fixture
def admin(db: asyncpg.Connection) -> asyncpg.Connection:
    """A connection outside the store's pool, to kill the pool's backends."""
    return db


async def kill_backend(admin: asyncpg.Connection, conn: asyncpg.Connection) -> None:
    """Terminate the server backend of `conn`, and wait until the client has noticed."""
    gone = asyncio.Event()
    conn.add_termination_listener(lambda _: gone.set())
    assert await admin.fetchval("SELECT pg_terminate_backend($1)", conn.get_server_pid())
    await asyncio.wait_for(gone.wait(), timeout=10)


def killed(admin: asyncpg.Connection, fn: Fn, times: int) -> tuple[Fn, list[int]]:
    """`fn`, whose first `times` invocations get a connection killed after acquire."""
    pids: list[int] = []

    async def wrapped(conn: asyncpg.Connection) -> Any:
        pids.append(conn.get_server_pid())
        if len(pids) <= times:
            await kill_backend(admin, conn)
        return await fn(conn)

    return wrapped, pids


def kill_next_calls(monkeypatch, store: PostgresMemoryStore, admin, times: int) -> list[int]:
    """Make the store's next `run` call meet `times` killed connections; its pids seen."""
    real_run = store.run
    pids: list[int] = []

    async def run(fn: Fn) -> Any:
        monkeypatch.setattr(store, "run", real_run)  # only this one call
        wrapped, seen = killed(admin, fn, times)
        try:
            return await real_run(wrapped)
        finally:
            pids.extend(seen)

    monkeypatch.setattr(store, "run", run)
    return pids


# -- 1. a connection dropped inside a call ---------------------------------------------


async def test_connection_killed_inside_a_call_is_retried_on_a_fresh_one(store, admin) -> None:
    fn, pids = killed(admin, lambda conn: conn.fetchval("SELECT 41 + 1"), times=1)
    assert await store.run(fn) == 42
    assert len(pids) == 2 and pids[0] != pids[1]
    assert await store.ping()


async def test_connection_killed_on_both_attempts_is_storage_unavailable(store, admin) -> None:
    fn, pids = killed(admin, lambda conn: conn.fetchval("SELECT 1"), times=2)
    with pytest.raises(StorageUnavailableError):
        await store.run(fn)
    assert len(pids) == 2
    assert await store.ping()  # the pool replaced both connections


async def test_saver_read_survives_its_connection_being_killed(
    saver, store, admin, monkeypatch
) -> None:
    thread = str(uuid.uuid4())
    await run_turns(chat_graph(saver), thread, 1)
    pids = kill_next_calls(monkeypatch, store, admin, times=1)
    assert await saver.aget_tuple(cfg(thread)) is not None
    assert len(pids) == 2


async def test_after_every_idle_connection_was_killed_the_next_calls_succeed(
    database_dsn: str, admin
) -> None:
    """A restart or a proxy cut kills every idle pooled connection at once: the first call
    meets a dead one, and its retry must not meet another."""
    store = PostgresMemoryStore(database_dsn, min_size=4, max_size=4)
    await store.initialize()
    try:
        held = [await store.pool.acquire() for _ in range(4)]  # open all four
        pids = [conn.get_server_pid() for conn in held]
        for conn in held:
            await store.pool.release(conn)
        await admin.execute("SELECT pg_terminate_backend(p) FROM unnest($1::int[]) p", pids)
        for _ in range(5):
            assert await store.run(lambda conn: conn.fetchval("SELECT 1")) == 1
    finally:
        await store.close()


async def lease_rows(admin: asyncpg.Connection, sid: uuid.UUID) -> int:
    return await admin.fetchval("SELECT count(*) FROM turn_leases WHERE session_id = $1", sid)


async def test_lease_release_survives_a_killed_connection(store, admin, monkeypatch) -> None:
    leases, sid, run_id = TurnLeases(store), uuid.uuid4(), uuid.uuid4()
    await leases.acquire(sid, run_id)
    async with leases.held(sid, run_id):
        pids = kill_next_calls(monkeypatch, store, admin, times=1)  # the release's call
    assert len(pids) == 2
    assert await lease_rows(admin, sid) == 0


async def test_lease_release_killed_twice_is_retried_in_the_background(
    store, admin, monkeypatch
) -> None:
    leases, sid, run_id = TurnLeases(store, ttl_seconds=2.0), uuid.uuid4(), uuid.uuid4()
    await leases.acquire(sid, run_id)
    async with leases.held(sid, run_id):
        pids = kill_next_calls(monkeypatch, store, admin, times=2)
    assert len(pids) == 2
    for _ in range(100):
        if await lease_rows(admin, sid) == 0:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the lease was never released")


# -- 2. prune ---------------------------------------------------------------------------


async def checkpoint_count(store: PostgresMemoryStore, thread: str) -> int:
    return await store.pool.fetchval(
        "SELECT count(*) FROM checkpoints WHERE session_id = $1", session_id_for(thread)
    )


async def test_prune_refuses_a_single_string(pooled_saver, pooled_store) -> None:
    graph = chat_graph(pooled_saver)
    for thread in ("a", "b"):
        await pooled_saver.adelete_thread(thread)
        await run_turns(graph, thread, 1)
    for strategy in ("keep_latest", "delete"):
        with pytest.raises(TypeError):
            await pooled_saver.aprune("ab", strategy=strategy)
    assert await checkpoint_count(pooled_store, "a") > 1
    assert await checkpoint_count(pooled_store, "b") > 1


def concat(state: list, writes: list[list]) -> list:
    return state + [item for batch in writes for item in batch]


class DeltaState(MessagesState):
    items: Annotated[list, DeltaChannel(concat)]


def delta_graph(checkpointer: ConversationCheckpointer):
    def note(state: DeltaState) -> dict:
        return {"items": [len(state["messages"])], "messages": [AIMessage("noted")]}

    builder = StateGraph(DeltaState)
    builder.add_node("note", note)
    builder.add_edge(START, "note")
    builder.add_edge("note", END)
    return builder.compile(checkpointer=checkpointer)


async def test_keep_latest_refuses_a_delta_channel_thread_and_prunes_nothing(saver, store) -> None:
    delta, plain = str(uuid.uuid4()), str(uuid.uuid4())
    await run_turns(delta_graph(saver), delta, 2)
    assert (await delta_graph(saver).aget_state(cfg(delta))).values["items"] == [1, 3]
    await run_turns(chat_graph(saver), plain, 2)
    before = [await checkpoint_count(store, t) for t in (delta, plain)]
    with pytest.raises(NotImplementedError, match="DeltaChannel"):
        await saver.aprune([plain, delta])
    assert [await checkpoint_count(store, t) for t in (delta, plain)] == before
    await saver.aprune([plain])
    assert await checkpoint_count(store, plain) == 1


async def test_keep_latest_refuses_a_delta_snapshot_marker(saver, store) -> None:
    """An inline `true` with a blob behind it is a snapshot (as the official saver writes)."""
    thread = str(uuid.uuid4())
    await run_turns(chat_graph(saver), thread, 2)
    sid = session_id_for(thread)
    await store.pool.execute(
        "UPDATE checkpoints SET checkpoint = jsonb_set(jsonb_set(checkpoint, "
        "'{channel_values,items}', 'true'), '{channel_versions,items}', '\"v1\"') "
        "WHERE session_id = $1 AND checkpoint_id = (SELECT min(checkpoint_id) "
        "FROM checkpoints WHERE session_id = $1)",
        sid,
    )
    await store.pool.execute(
        "INSERT INTO checkpoint_blobs (session_id, checkpoint_ns, channel, version, type, blob)"
        " VALUES ($1, '', 'items', 'v1', 'msgpack', '\\x90'::bytea)",
        sid,
    )
    before = await checkpoint_count(store, thread)
    with pytest.raises(NotImplementedError):
        await saver.aprune([thread])
    assert await checkpoint_count(store, thread) == before


async def namespaces(saver: Any, thread: str) -> Counter:
    """Checkpoints per namespace, a call's task id written `*` (it differs between runs)."""
    shape: Counter = Counter()
    async for t in saver.alist({"configurable": {"thread_id": thread}}):
        shape[re.sub(r":[0-9a-f-]{36}", ":*", t.config["configurable"]["checkpoint_ns"])] += 1
    return shape


async def prune_scenario(saver: Any, thread: str, interrupted: bool) -> tuple[Counter, ...]:
    """Two turns (and a third one stopped inside a subgraph call), pruned, then resumed."""
    graph = subgraph_calls_graph(saver)
    for text in ["q0", "q1"] + (["ask"] if interrupted else []):
        await graph.ainvoke({"messages": [HumanMessage(text)]}, cfg(thread))
    before = await namespaces(saver, thread)
    await saver.aprune([thread])
    after = await namespaces(saver, thread)
    if interrupted:
        await graph.ainvoke(Command(resume="yes"), cfg(thread))
    final = await graph.aget_state(cfg(thread))
    contents = Counter(m.content for m in final.values["messages"])
    return before, after, contents


@pytest.mark.parametrize("interrupted", [False, True], ids=["finished", "interrupted"])
async def test_keep_latest_leaves_the_namespaces_the_official_saver_leaves(
    saver, official_saver, interrupted: bool
) -> None:
    thread = str(uuid.uuid4())
    ours = await prune_scenario(saver, thread, interrupted)
    official = await prune_scenario(official_saver, thread, interrupted)
    assert ours[0] == official[0]  # the same checkpoints before
    assert ours[0]["plan:*"] >= 2  # the finished calls were checkpointed
    assert ours[1] == official[1]
    expected = Counter({"": 1, "recall": 1, **({"plan:*": 1} if interrupted else {})})
    assert ours[1] == expected
    assert ours[2] == official[2]  # the same conversation, resumed when interrupted


# -- 3. thread ids ----------------------------------------------------------------------


def test_uuid_thread_ids_are_read_case_insensitively() -> None:
    u = uuid.uuid4()
    assert session_id_for(str(u).upper()) == u
    assert session_id_for(str(u)) == u
    for other in (f"{{{u}}}", u.hex, f"urn:uuid:{u}", str(u).upper().replace("-", "")):
        assert session_id_for(other) == uuid.uuid5(_THREAD_NAMESPACE, other)


async def test_upper_and_lower_case_uuid_threads_share_one_conversation(
    pooled_saver, pooled_store
) -> None:
    u = uuid.uuid4()
    graph = chat_graph(pooled_saver)
    await graph.ainvoke({"messages": [HumanMessage("one")]}, cfg(str(u).upper()))
    await graph.ainvoke({"messages": [HumanMessage("two")]}, cfg(str(u)))
    rows = await pooled_store.pool.fetch(
        "SELECT session_id, jsonb_array_length(messages) AS n FROM conversations "
        "WHERE session_id = ANY($1::uuid[])",
        [u, session_id_for(str(u).upper())],
    )
    assert [(r["session_id"], r["n"]) for r in rows] == [(u, 4)]
    assert await pooled_store.get_messages(u) is not None


async def test_leases_of_dead_workers_are_deleted(store, admin) -> None:
    """A worker that died leaves its lease behind; a later turn elsewhere deletes it."""
    dead, live = uuid.uuid4(), uuid.uuid4()
    await admin.execute(
        "INSERT INTO turn_leases (session_id, run_id, expires_at) "
        "VALUES ($1, $2, now() - interval '10 minutes')",
        dead,
        uuid.uuid4(),
    )
    leases = TurnLeases(store, ttl_seconds=5)
    await leases.acquire(live, uuid.uuid4())
    assert await lease_rows(admin, dead) == 0
    assert await lease_rows(admin, live) == 1
