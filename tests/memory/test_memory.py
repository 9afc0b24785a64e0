"""The checkpointer with a real PostgreSQL: transcript, exact round trip, time travel, sizes."""

from __future__ import annotations

import asyncio
import json
import re
import uuid

import asyncpg
import pytest
from langchain_core.messages import AIMessage, HumanMessage, RemoveMessage, ToolMessage
from langgraph.graph import START, MessagesState, StateGraph

from src.agent.memory import ConversationCheckpointer, PostgresMemoryStore, session_id_for
from src.agent.memory.migrations import load_migrations
from src.agent.memory.seq_ranges import TRANSCRIPT_BLOB_TYPE
from tests.support import cfg, chat_graph, run_turns


async def test_transcript_format_and_plain_sql(pooled_saver, pooled_store) -> None:
    graph = chat_graph(pooled_saver)
    thread = str(uuid.uuid4())
    await run_turns(graph, thread, 2)
    rows = await pooled_store.get_messages(uuid.UUID(thread))
    assert [m["role"] for m in rows] == ["user", "assistant", "user", "assistant"]
    for element in rows:
        for key in ("role", "content", "tool_calls", "tool_call_id", "timestamp", "id"):
            assert key in element
        assert isinstance(element["timestamp"], float | int)
    last = await pooled_store.pool.fetchval(
        "SELECT messages->-1->>'content' FROM conversations WHERE session_id = $1",
        uuid.UUID(thread),
    )
    state = await graph.aget_state(cfg(thread))
    assert last == state.values["messages"][-1].content


async def test_exact_round_trip_of_rich_messages(pooled_saver) -> None:
    thread = str(uuid.uuid4())
    graph = chat_graph(pooled_saver)
    ai = AIMessage(
        content=[{"type": "text", "text": "hi"}],
        id="ai-1",
        name="vera",
        tool_calls=[{"name": "get_weather", "args": {"city": "Montevideo"}, "id": "call_1"}],
        usage_metadata={"input_tokens": 1, "output_tokens": 2, "total_tokens": 3},
        response_metadata={"model_name": "gpt", "logprobs": None},
        additional_kwargs={"tool_calls": [{"id": "call_1", "type": "function"}]},
    )
    tool = ToolMessage(
        content='{"temp": 21}',
        tool_call_id="call_1",
        id="t-1",
        name="get_weather",
        artifact={"raw": [1, 2]},
        status="success",
    )
    human = HumanMessage("weather?", id="h-1", additional_kwargs={"k": 1})
    await graph.aupdate_state(cfg(thread), {"messages": [human, ai, tool]}, as_node="reply")
    fresh = ConversationCheckpointer(pooled_saver.store)  # nothing cached
    state = await chat_graph(fresh).aget_state(cfg(thread))
    assert state.values["messages"] == [human, ai, tool]
    assert [type(m) for m in state.values["messages"]] == [HumanMessage, AIMessage, ToolMessage]


@pytest.mark.parametrize(
    "text",
    [
        "nul \x00 inside",
        "lone surrogate \udc80 here",
        "emoji 🚀💸 and RTL مرحبا بالعالم",
        "\ue000x",
    ],
)
async def test_hostile_text_round_trips(pooled_saver, pooled_store, text: str) -> None:
    thread = str(uuid.uuid4())
    graph = chat_graph(pooled_saver)
    await graph.ainvoke({"messages": [HumanMessage(text, id="h")]}, cfg(thread))
    fresh = ConversationCheckpointer(pooled_saver.store)
    state = await chat_graph(fresh).aget_state(cfg(thread))
    assert state.values["messages"][0].content == text
    assert (await pooled_store.get_messages(uuid.UUID(thread)))[0]["content"] == text


async def test_time_travel_after_removal_and_replacement(pooled_saver) -> None:
    thread = "1"  # LangGraph docs' style thread id: mapped to a UUID, kept as written
    graph = chat_graph(pooled_saver)
    await run_turns(graph, thread, 3)
    history = [s async for s in graph.aget_state_history(cfg(thread))]
    before = {s.config["configurable"]["checkpoint_id"]: s.values.get("messages") for s in history}
    state = await graph.aget_state(cfg(thread))
    first, second = state.values["messages"][0], state.values["messages"][1]
    replaced = first.model_copy(update={"content": "edited question"})
    await graph.aupdate_state(cfg(thread), {"messages": [RemoveMessage(id=second.id), replaced]})
    now = (await graph.aget_state(cfg(thread))).values["messages"]
    assert now[0].content == "edited question" and second.id not in [m.id for m in now]
    fresh_graph = chat_graph(ConversationCheckpointer(pooled_saver.store))
    for checkpoint_id, messages in before.items():
        config = {"configurable": {"thread_id": thread, "checkpoint_id": checkpoint_id}}
        assert (await fresh_graph.aget_state(config)).values.get("messages") == messages
    latest = await pooled_saver.aget_tuple(cfg(thread))
    assert latest.config["configurable"]["thread_id"] == "1"
    assert await pooled_saver.store.get_messages(session_id_for("1")) is not None


async def stored_bytes(store: PostgresMemoryStore, sid: uuid.UUID) -> int:
    """Live bytes of a session's rows across all four tables (pg_column_size of each row).

    This is the data kept, not the file size: each transcript append rewrites the JSONB
    value, and until VACUUM reclaims the old versions they still occupy the table files.
    """
    return await store.pool.fetchval(
        """SELECT (SELECT COALESCE(SUM(pg_column_size(c.*)), 0) FROM conversations c
                    WHERE session_id = $1)
                + (SELECT COALESCE(SUM(pg_column_size(k.*)), 0) FROM checkpoints k
                    WHERE session_id = $1)
                + (SELECT COALESCE(SUM(pg_column_size(b.*)), 0) FROM checkpoint_blobs b
                    WHERE session_id = $1)
                + (SELECT COALESCE(SUM(pg_column_size(w.*)), 0) FROM checkpoint_writes w
                    WHERE session_id = $1)""",
        sid,
    )


async def test_live_storage_grows_linearly(saver, store) -> None:
    graph = chat_graph(saver)
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    await run_turns(graph, a, 30)
    await run_turns(graph, b, 60)
    small, large = await stored_bytes(store, uuid.UUID(a)), await stored_bytes(store, uuid.UUID(b))
    print(f"bytes after 30 turns: {small}, after 60 turns: {large}")
    assert large < 2.3 * small, (small, large)
    # The messages blob of a checkpoint is a handful of ranges, not the list.
    blob = await store.pool.fetchval(
        "SELECT blob FROM checkpoint_blobs WHERE session_id = $1 AND channel = 'messages' "
        "ORDER BY version DESC LIMIT 1",
        uuid.UUID(b),
    )
    assert json.loads(blob) == [[0, 120]]


async def test_subgraph_messages_stay_out_of_transcript(pooled_saver, pooled_store) -> None:
    thread = str(uuid.uuid4())

    def inner(state: MessagesState) -> dict:
        return {"messages": [AIMessage("inner thought", id="inner-1")]}

    sub = StateGraph(MessagesState)
    sub.add_node("inner", inner)
    sub.add_edge(START, "inner")
    sub_graph = sub.compile()

    def outer(state: MessagesState) -> dict:
        return {"messages": [AIMessage("final answer", id="outer-1")]}

    builder = StateGraph(MessagesState)
    builder.add_node("sub", sub_graph)
    builder.add_node("outer", outer)
    builder.add_edge(START, "sub")
    builder.add_edge("sub", "outer")
    graph = builder.compile(checkpointer=pooled_saver)

    await graph.ainvoke({"messages": [HumanMessage("hi", id="h")]}, cfg(thread))
    transcript = await pooled_store.get_messages(uuid.UUID(thread))
    # The subgraph's message reaches the root state through the parent's reducer only.
    assert [m["id"] for m in transcript] == ["h", "inner-1", "outer-1"]
    blobs = await pooled_store.pool.fetch(
        "SELECT checkpoint_ns, type FROM checkpoint_blobs WHERE session_id = $1 "
        "AND channel = 'messages'",
        uuid.UUID(thread),
    )
    sub_types = {r["type"] for r in blobs if r["checkpoint_ns"] != ""}
    assert sub_types, "the subgraph checkpointed in its own namespace"
    assert TRANSCRIPT_BLOB_TYPE not in sub_types


async def test_state_survives_new_pool_and_saver(database_dsn: str) -> None:
    """The only "survives a new pool" test: a checkpointer closed and another opened
    (`from_dsn` both times) find the exact state and go on from it."""
    thread = str(uuid.uuid4())
    async with ConversationCheckpointer.from_dsn(database_dsn, min_size=1, max_size=2) as first:
        await run_turns(chat_graph(first), thread, 2)
        expected = (await chat_graph(first).aget_state(cfg(thread))).values
    assert first.store._pool is None, "leaving the block closed the pool"

    async with ConversationCheckpointer.from_dsn(database_dsn, min_size=1, max_size=2) as second:
        graph = chat_graph(second)
        assert (await graph.aget_state(cfg(thread))).values == expected
        await graph.ainvoke({"messages": [HumanMessage("third", id="h3")]}, cfg(thread))
        messages = (await graph.aget_state(cfg(thread))).values["messages"]
        assert len(messages) == 6 and messages[:4] == expected["messages"]


async def test_from_pool_applies_the_schema_and_leaves_the_pool_open(empty_dsn: str) -> None:
    pool = await asyncpg.create_pool(empty_dsn, min_size=1, max_size=2)
    try:
        async with ConversationCheckpointer.from_pool(pool) as saver:
            await run_turns(chat_graph(saver), "from-pool", 1)
        assert await pool.fetchval("SELECT count(*) FROM conversations") == 1
        versions = await pool.fetch("SELECT version FROM vera_memory_migrations ORDER BY 1")
        assert [v["version"] for v in versions] == [m.version for m in load_migrations()]
    finally:
        await pool.close()


async def test_concurrent_calls_run_in_parallel(pooled_saver, pooled_store) -> None:
    """No saver-wide lock: two slow reads overlap on two pooled connections."""
    thread = str(uuid.uuid4())
    await run_turns(chat_graph(pooled_saver), thread, 1)
    started = asyncio.Event()
    both = asyncio.Barrier(2)
    original = pooled_saver._run

    async def run_with_barrier(fn):
        async def wrapped(conn):
            await asyncio.wait_for(both.wait(), timeout=5)  # fails unless both are inside
            started.set()
            return await fn(conn)

        return await original(wrapped)

    pooled_saver._run = run_with_barrier
    results = await asyncio.gather(
        pooled_saver.aget_tuple(cfg(thread)), pooled_saver.aget_tuple(cfg(thread))
    )
    assert all(r is not None for r in results) and started.is_set()


async def test_sync_methods_from_a_thread_and_clear_error_on_loop(pooled_saver) -> None:
    thread = str(uuid.uuid4())
    await run_turns(chat_graph(pooled_saver), thread, 1)
    found = await asyncio.to_thread(pooled_saver.get_tuple, cfg(thread))
    assert found is not None
    listed = await asyncio.to_thread(lambda: list(pooled_saver.list(cfg(thread))))
    assert len(listed) >= 2
    with pytest.raises(asyncio.InvalidStateError, match="a\\* methods"):
        pooled_saver.get_tuple(cfg(thread))


async def test_two_processes_alternating_on_one_thread_stay_exact(database_dsn: str) -> None:
    """Each saver caches the log; a stale cache must be detected, never written from."""
    thread = str(uuid.uuid4())
    stores = [PostgresMemoryStore(database_dsn, min_size=1, max_size=2) for _ in range(2)]
    for s in stores:
        await s.initialize()
    try:
        graphs = [chat_graph(ConversationCheckpointer(s)) for s in stores]
        for turn in range(6):  # A, B, A, B, ...: every turn starts from a stale cache
            await run_turns(graphs[turn % 2], thread, 1)
        transcript = await stores[0].get_messages(uuid.UUID(thread))
        assert [m["role"] for m in transcript] == ["user", "assistant"] * 6
        assert len({m["id"] for m in transcript}) == 12  # nothing stored twice
        fresh = chat_graph(ConversationCheckpointer(stores[1]))
        states = [(await g.aget_state(cfg(thread))).values for g in (*graphs, fresh)]
        assert states[0] == states[1] == states[2]
        assert [m.id for m in states[0]["messages"]] == [m["id"] for m in transcript]
        history = [s async for s in fresh.aget_state_history(cfg(thread))]
        lengths = [len(s.values.get("messages", [])) for s in history]
        assert lengths == sorted(lengths, reverse=True) and lengths[0] == 12
    finally:
        for s in stores:
            await s.close()


def test_channel_versions_are_langgraphs_standard_form(saver) -> None:
    """Studio's adapter and the official saver write this form: mixed on one thread, every
    next version still compares greater as a string."""
    from langgraph.checkpoint.postgres.base import BasePostgresSaver

    official = BasePostgresSaver.get_next_version
    version = None
    for step in range(12):  # ours and the official's alternating, across a digit carry
        following = saver.get_next_version(version) if step % 2 else official(None, version, None)
        assert version is None or following > version
        assert re.fullmatch(r"\d{32}\.[0-9.e-]+", following), following
        version = following
    assert int(version.split(".")[0]) == 12


async def test_a_caller_mutating_a_read_message_never_changes_what_is_stored(saver) -> None:
    thread = str(uuid.uuid4())
    graph = chat_graph(saver)
    await run_turns(graph, thread, 2)
    first = (await graph.aget_state(cfg(thread))).values["messages"]
    original = first[1].model_copy(deep=True)
    first[1].content = "changed in place"
    first[1].response_metadata["model_name"] = "tampered"
    again = (await graph.aget_state(cfg(thread))).values["messages"]
    assert again[1] == original and again[1] is not first[1]
    fresh = chat_graph(ConversationCheckpointer(saver.store))
    assert (await fresh.aget_state(cfg(thread))).values["messages"][1] == original
    await run_turns(graph, thread, 1)  # the next turn starts from the stored state
    assert (await graph.aget_state(cfg(thread))).values["messages"][1] == original


async def test_transcript_cache_is_bounded_and_reloads_what_it_dropped(saver) -> None:
    saver.message_logs.max_messages = 5  # two sessions of 4 messages cannot both stay
    graph = chat_graph(saver)
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    await run_turns(graph, a, 2)
    await run_turns(graph, b, 2)
    assert saver.message_logs.peek(uuid.UUID(a)) is None  # least recently used: dropped
    assert saver.message_logs.peek(uuid.UUID(b)) is not None
    await run_turns(graph, a, 1)  # reloaded from the database, exact
    messages = (await graph.aget_state(cfg(a))).values["messages"]
    assert len(messages) == 6 and len({m.id for m in messages}) == 6


async def test_transcript_cache_is_bounded_by_bytes(store) -> None:
    """Large messages evict by bytes long before the count bounds would: three sessions of
    ~200 KB each under a 500 KB bound keep the two most recent; the dropped one reads back
    exactly (from a cold copy) and is cached again."""
    saver = ConversationCheckpointer(store, cache_max_bytes=500_000)
    cache = saver.message_logs
    assert cache.max_bytes == 500_000
    graph = chat_graph(saver)
    threads = [str(uuid.uuid4()) for _ in range(3)]
    for thread in threads:
        big = f"{thread} " + "x" * 100_000
        await graph.ainvoke({"messages": [HumanMessage(big)]}, cfg(thread))
        await graph.ainvoke({"messages": [HumanMessage(big + "!")]}, cfg(thread))
    assert 0 < cache.total_bytes <= 500_000
    assert cache.peek(uuid.UUID(threads[0])) is None  # least recently used: dropped
    assert all(cache.peek(uuid.UUID(t)) is not None for t in threads[1:])
    assert cache.peek(uuid.UUID(threads[2])).nbytes >= 200_000  # type: ignore[union-attr]
    messages = (await graph.aget_state(cfg(threads[0]))).values["messages"]
    assert [len(m.content) for m in messages[::2]] == [100_037, 100_038]
    fresh = chat_graph(ConversationCheckpointer(store))
    assert (await fresh.aget_state(cfg(threads[0]))).values["messages"] == messages
    assert cache.peek(uuid.UUID(threads[0])) is not None and cache.total_bytes <= 500_000
    # The default comes from the store (the POSTGRES_MEMORY_CACHE_MAX_BYTES setting).
    assert ConversationCheckpointer(store).message_logs.max_bytes == store.cache_max_bytes


async def test_copied_and_run_deleted_threads_keep_one_true_history(
    pooled_saver, pooled_store
) -> None:
    """A copied thread reads back exactly; deleting the latest run's checkpoints makes the
    transcript show the checkpoint that is now the latest."""
    graph = chat_graph(pooled_saver)
    source, target = str(uuid.uuid4()), str(uuid.uuid4())
    await run_turns(graph, source, 2)
    await pooled_saver.acopy_thread(source, target)
    fresh = chat_graph(ConversationCheckpointer(pooled_store))
    expected = (await graph.aget_state(cfg(source))).values["messages"]
    assert (await fresh.aget_state(cfg(target))).values["messages"] == expected
    run_id = str(uuid.uuid4())  # as langgraph-api records it: in the run's metadata
    await fresh.ainvoke(
        {"messages": [HumanMessage("third")]}, {**cfg(target), "metadata": {"run_id": run_id}}
    )
    assert len(await pooled_store.get_messages(uuid.UUID(target))) == 6  # the copy goes on alone
    assert len(await pooled_store.get_messages(uuid.UUID(source))) == 4

    await pooled_saver.adelete_for_runs([run_id])
    now = (await fresh.aget_state(cfg(target))).values["messages"]
    assert [m.content for m in now] == [m.content for m in expected]
    assert [m["id"] for m in await pooled_store.get_messages(uuid.UUID(target))] == [
        m.id for m in now
    ]


def test_stored_copies_compare_as_pydantic_does_and_share_nothing() -> None:
    """`MessageSnapshot`, the cache's stored copy of a message, equals exactly the messages
    pydantic finds equal to it, and a message changed in place no longer equals it."""
    from src.agent.memory.transcript import MessageSnapshot

    call = {"name": "f", "args": {"x": [1]}, "id": "c1", "type": "tool_call"}
    messages = [
        HumanMessage("hi", id="h1"),
        AIMessage("", tool_calls=[call], response_metadata={"m": {"n": 1}}, id="a1"),
        ToolMessage("42", tool_call_id="c1", artifact={"raw": [1, 2]}),
    ]
    for message in messages:
        stored = MessageSnapshot(message)
        twin = message.model_copy(deep=True)
        assert stored == message and stored == twin and stored.id == message.id
        assert stored != HumanMessage("other") and stored != "not a message"
        twin.response_metadata["changed"] = True
        assert (stored == twin) == (message == twin) and stored != twin
        assert stored == message  # the copy shares nothing with what it was made from
    changed = messages[1].model_copy(deep=True)
    changed.tool_calls[0]["args"]["x"].append(2)
    assert MessageSnapshot(messages[1]) != changed
