"""Where `langgraph-checkpoint-postgres`'s own tests found our saver behaving otherwise
(`test_async.py::test_pending_sends_migration` and `test_delta_plain_value_seed.py`, read
in the langgraph repository at checkpoint-postgres 3.1.2; the prune cases checked against
3.2.0's `aprune` as installed), adapted to ours and run side by side with the official saver:

- a checkpoint older than format v4 reads the `Send`s its parent left pending
  (`__pregel_tasks` writes) as its own `__pregel_tasks` value, also after `keep_latest`;
- `keep_latest` refuses a thread whose only sign of a `DeltaChannel` is a `_DeltaSnapshot`
  value (no counters in the metadata), so the history its value is rebuilt from stays;
- a `DeltaChannel` history walks past an inline `None` (no seed), as past no value at all;
- a checkpoint's writes come in LangGraph's order (code points) under any collation.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Annotated, Any, TypedDict

import asyncpg
import pytest
from langchain_core.messages import AIMessage, HumanMessage
from langgraph.channels.delta import DeltaChannel
from langgraph.checkpoint.base import (
    Checkpoint,
    CheckpointTuple,
    create_checkpoint,
    empty_checkpoint,
)
from langgraph.checkpoint.base.id import uuid6
from langgraph.checkpoint.serde.types import TASKS, _DeltaSnapshot
from langgraph.graph import START, StateGraph
from langgraph.graph.message import _messages_delta_reducer

from src.agent.memory import ConversationCheckpointer, session_id_for
from tests.support import drop_database, with_database

CHANNEL = "items"


def root(thread: str) -> dict:
    return {"configurable": {"thread_id": thread, "checkpoint_ns": ""}}


async def history(saver: Any, thread: str) -> list[CheckpointTuple]:
    return [t async for t in saver.alist({"configurable": {"thread_id": thread}})]


# -- 1. pending sends of checkpoints older than v4 ---------------------------------------


async def old_format_sends(saver: Any, thread: str) -> tuple[dict, dict]:
    """A v2 checkpoint (what `empty_checkpoint` writes) with `Send`s left pending by two
    tasks (the later task id and path written first), and its v2 child. Returns both
    configs."""
    parent = await saver.aput(root(thread), empty_checkpoint(), {}, {})
    await saver.aput_writes(parent, [(TASKS, "send-3")], task_id="task-b", task_path="~b")
    await saver.aput_writes(parent, [(TASKS, "send-1"), (TASKS, "send-2")], task_id="task-a")
    cp0 = (await saver.aget_tuple(parent)).checkpoint
    child = await saver.aput(parent, create_checkpoint(cp0, {}, 1), {}, {})
    return parent, child


def assert_sends_moved(parent: CheckpointTuple, child: CheckpointTuple) -> None:
    assert parent.checkpoint["v"] < 4 and child.checkpoint["v"] < 4
    # The parent keeps them as pending writes; they are not its value.
    assert parent.checkpoint["channel_values"] == {}
    assert parent.checkpoint["channel_versions"] == {}
    # Ordered as the official saver orders them: by task path, task id, idx.
    assert child.checkpoint["channel_values"] == {TASKS: ["send-1", "send-2", "send-3"]}
    # A channel with no other versions gets the first version of the saver's form.
    assert child.checkpoint["channel_versions"][TASKS].startswith("0" * 31 + "1.")


async def test_an_old_checkpoint_reads_its_parents_pending_sends(saver, official_saver) -> None:
    for s in (saver, official_saver):
        thread = str(uuid.uuid4())
        parent, child = await old_format_sends(s, thread)
        assert_sends_moved(await s.aget_tuple(parent), await s.aget_tuple(child))
        assert_sends_moved(await s.aget_tuple(parent), await s.aget_tuple(root(thread)))
        listed = await history(s, thread)  # alist moves them too
        assert len(listed) == 2
        assert_sends_moved(listed[1], listed[0])


async def test_an_old_checkpoint_takes_the_highest_version_for_its_sends(saver) -> None:
    thread = str(uuid.uuid4())
    cp0 = empty_checkpoint()
    cp0["channel_values"] = {"a": [1], "b": "x"}
    cp0["channel_versions"] = {"a": saver.get_next_version(None), "b": saver.get_next_version("5")}
    parent = await saver.aput(root(thread), cp0, {}, dict(cp0["channel_versions"]))
    await saver.aput_writes(parent, [(TASKS, "send-1")], task_id="t")
    child = await saver.aput(parent, create_checkpoint(cp0, None, 1), {}, {})
    got = (await saver.aget_tuple(child)).checkpoint
    assert got["channel_values"] == {"a": [1], "b": "x", TASKS: ["send-1"]}
    assert got["channel_versions"][TASKS] == cp0["channel_versions"]["b"]  # the highest


async def test_only_old_checkpoints_with_pending_sends_change(saver) -> None:
    thread = str(uuid.uuid4())
    parent = await saver.aput(root(thread), empty_checkpoint(), {}, {})
    await saver.aput_writes(parent, [("other", "x")], task_id="t")
    child = await saver.aput(parent, create_checkpoint(empty_checkpoint(), {}, 1), {}, {})
    assert (await saver.aget_tuple(child)).checkpoint["channel_versions"] == {}
    # A v4 checkpoint (what LangGraph writes) keeps its own TASKS value: none here.
    v4 = create_checkpoint(empty_checkpoint(), {}, 2)
    v4["v"] = 4
    await saver.aput_writes(child, [(TASKS, "send-1")], task_id="t")
    newest = await saver.aput(child, v4, {}, {})
    got = (await saver.aget_tuple(newest)).checkpoint
    assert got["channel_values"] == {} and got["channel_versions"] == {}


async def test_keep_latest_keeps_an_old_heads_pending_sends(saver, official_saver) -> None:
    """The head reads its sends from its parent, so `keep_latest` keeps both."""
    for s in (saver, official_saver):
        thread = str(uuid.uuid4())
        parent, child = await old_format_sends(s, thread)
        await s.aprune([thread], strategy="keep_latest")
        listed = await history(s, thread)
        assert [t.config["configurable"]["checkpoint_id"] for t in listed] == [
            child["configurable"]["checkpoint_id"],
            parent["configurable"]["checkpoint_id"],
        ]
        head = await s.aget_tuple(root(thread))
        assert head.checkpoint["channel_values"][TASKS] == ["send-1", "send-2", "send-3"]
        assert_sends_moved(listed[1], head)


# -- 2. a thread whose only sign of a DeltaChannel is a snapshot --------------------------


async def delta_chain(saver: Any, seed_value: Any, steps: int = 4) -> dict:
    """`seed_value` stored at step 1 of a chain of `steps` checkpoints whose others store
    nothing for the channel; each step leaves a write `w<step>` to it. Returns the head's
    config. The metadata has no `counters_since_delta_snapshot` (as the official tests)."""
    thread = str(uuid.uuid4())
    config = root(thread)
    for step in range(steps):
        cp: Checkpoint = empty_checkpoint()
        cp["id"] = str(uuid6(clock_seq=step))
        new_versions: dict[str, Any] = {}
        if step == 1:
            cp["channel_values"][CHANNEL] = seed_value
            new_versions[CHANNEL] = cp["channel_versions"][CHANNEL] = "v1"
        else:
            cp["channel_versions"][CHANNEL] = f"v{step}"
        metadata: Any = {"source": "loop", "step": step, "parents": {}}
        config = await saver.aput(config, cp, metadata, new_versions)
        await saver.aput_writes(config, [(CHANNEL, f"w{step}")], str(uuid.uuid4()))
    return config


async def test_keep_latest_refuses_a_thread_whose_only_delta_sign_is_a_snapshot(
    saver, official_saver
) -> None:
    for s in (saver, official_saver):
        head = await delta_chain(s, _DeltaSnapshot([10, 20]), steps=3)
        thread = head["configurable"]["thread_id"]
        before = await s.aget_delta_channel_history(config=head, channels=[CHANNEL])
        with pytest.raises(NotImplementedError, match="DeltaChannel"):
            await s.aprune([thread], strategy="keep_latest")
        assert len(await history(s, thread)) == 3
        after = await s.aget_delta_channel_history(config=head, channels=[CHANNEL])
        assert after == before
        assert after[CHANNEL]["seed"] == _DeltaSnapshot([10, 20])
        assert [w[2] for w in after[CHANNEL]["writes"]] == ["w1"]


async def test_a_snapshot_is_stored_with_the_official_marker(saver, store) -> None:
    """The row holds an inline `true` for the snapshot (the official saver's marker, which
    its prune looks for), and the value reads back as the snapshot, not as `True`."""
    head = await delta_chain(saver, _DeltaSnapshot([10, 20]), steps=3)
    thread = head["configurable"]["thread_id"]
    inline = await store.pool.fetch(
        "SELECT checkpoint -> 'channel_values' -> $2 AS v FROM checkpoints "
        "WHERE session_id = $1 ORDER BY checkpoint_id",
        session_id_for(thread),
        CHANNEL,
    )
    assert [r["v"] for r in inline] == [None, "true", None]
    listed = await history(saver, thread)
    assert [CHANNEL in t.checkpoint["channel_values"] for t in listed] == [False, True, False]
    assert listed[1].checkpoint["channel_values"][CHANNEL] == _DeltaSnapshot([10, 20])
    assert isinstance(listed[1].checkpoint["channel_values"][CHANNEL], _DeltaSnapshot)


async def test_keep_latest_prunes_a_thread_with_a_plain_true_value(saver) -> None:
    """A genuine `True` is inline with no blob behind it: not a snapshot marker."""
    head = await delta_chain(saver, True, steps=2)
    thread = head["configurable"]["thread_id"]
    await saver.aprune([thread], strategy="keep_latest")
    assert len(await history(saver, thread)) == 1


# -- 3. seeds of DeltaChannel histories -----------------------------------------------------


@pytest.mark.parametrize(
    "seed_value",
    [42, "x", 3.5, True, False, 0, "", [10, 20], _DeltaSnapshot([10, 20]), _DeltaSnapshot(True)],
    ids=repr,
)
async def test_a_stored_seed_is_found(saver, official_saver, seed_value: Any) -> None:
    for s in (saver, official_saver):
        head = await delta_chain(s, seed_value)
        entry = (await s.aget_delta_channel_history(config=head, channels=[CHANNEL]))[CHANNEL]
        assert entry.get("seed", "<missing>") == seed_value
        assert type(entry["seed"]) is type(seed_value)
        # The seed's own step and the next; step 3's write is pending at the head.
        assert [w[2] for w in entry["writes"]] == ["w1", "w2"]


async def test_an_inline_none_seed_is_no_seed(saver, official_saver) -> None:
    """A JSON null reads as no value stored: the walk goes on to the root and the channel
    is rebuilt from every write (as the official `test_inline_primitive_seed_is_found`)."""
    for s in (saver, official_saver):
        head = await delta_chain(s, None)
        entry = (await s.aget_delta_channel_history(config=head, channels=[CHANNEL]))[CHANNEL]
        assert "seed" not in entry
        assert [w[2] for w in entry["writes"]] == ["w0", "w1", "w2"]
        assert (await s.aget_tuple(head)).checkpoint["channel_values"] == {}


async def test_the_sync_history_agrees(saver) -> None:
    """`get_delta_channel_history` (from another thread than the saver's loop)."""
    for seed_value, writes in ((None, ["w0", "w1", "w2"]), ([10, 20], ["w1", "w2"])):
        head = await delta_chain(saver, seed_value)
        got = await asyncio.to_thread(
            lambda h=head: saver.get_delta_channel_history(config=h, channels=[CHANNEL])
        )
        assert got == await saver.aget_delta_channel_history(config=head, channels=[CHANNEL])
        assert [w[2] for w in got[CHANNEL]["writes"]] == writes


async def test_a_history_of_an_unknown_or_empty_request(saver: ConversationCheckpointer) -> None:
    head = await delta_chain(saver, [1])
    assert await saver.aget_delta_channel_history(config=head, channels=[]) == {}
    missing = root(str(uuid.uuid4()))
    missing["configurable"]["checkpoint_id"] = str(uuid6())
    assert await saver.aget_delta_channel_history(config=missing, channels=[CHANNEL]) == {
        CHANNEL: {"writes": []}
    }


# -- graphs with DeltaChannels --------------------------------------------------------------


def concat(state: list, writes: Sequence[list]) -> list:
    return state + [item for batch in writes for item in batch]


class Notes(TypedDict):
    messages: Annotated[list, DeltaChannel(_messages_delta_reducer, snapshot_frequency=2)]
    items: Annotated[list, DeltaChannel(concat, snapshot_frequency=3)]
    flag: str | None


def notes_graph(checkpointer: Any):
    """Each turn: `respond` answers and notes the count; `tidy` sets `flag` to None."""

    def respond(state: Notes) -> dict:
        n = len(state["messages"])
        return {"messages": [AIMessage(f"reply-{n}", id=f"ai-{n}")], "items": [n]}

    def tidy(state: Notes) -> dict:
        return {"flag": None}

    builder = StateGraph(Notes)
    builder.add_node("respond", respond)
    builder.add_node("tidy", tidy)
    builder.add_edge(START, "respond")
    builder.add_edge("respond", "tidy")
    return builder.compile(checkpointer=checkpointer)


async def test_delta_channel_graphs_read_back_as_with_the_official_saver(
    saver, official_saver
) -> None:
    """State and every past state of a graph whose messages and items are DeltaChannels
    (snapshots every few updates, a plain channel set to None), on both savers."""
    seen = []
    for s in (saver, official_saver):
        graph, config = notes_graph(s), {"configurable": {"thread_id": str(uuid.uuid4())}}
        for i in range(5):
            turn = {"messages": [HumanMessage(f"q{i}", id=f"h{i}")], "flag": f"f{i}"}
            await graph.ainvoke(turn, config)
        states = [(st.values, st.next) async for st in graph.aget_state_history(config)]
        seen.append(states)
        final = states[0][0]
        assert [m.content for m in final["messages"]][-2:] == ["q4", "reply-9"]
        assert final["items"] == [1, 3, 5, 7, 9] and final["flag"] is None
    assert seen[0] == seen[1]


# -- the order of pending writes, whatever the database's collation ---------------------------


@pytest.fixture
async def icu_dsn(server_dsn: str) -> AsyncIterator[str]:
    """A database whose default collation is ICU English (as many managed servers'
    `en_US`): text sorts case-insensitively first, unlike Python's code point order."""
    name = f"vera_icu_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(server_dsn)
    try:
        await admin.execute(
            f'CREATE DATABASE "{name}" TEMPLATE template0 LOCALE_PROVIDER icu '
            "ICU_LOCALE 'en' LOCALE 'C.UTF-8'"
        )
    except asyncpg.PostgresError as exc:  # before PostgreSQL 15, or built without ICU
        pytest.skip(f"no ICU database on this server: {exc}")
    finally:
        await admin.close()
    dsn = with_database(server_dsn, name)
    try:
        yield dsn
    finally:
        await drop_database(server_dsn, dsn)


async def test_pending_writes_are_in_code_point_order_under_any_collation(icu_dsn) -> None:
    """The official saver sorts a checkpoint's writes in Python (`writes_sort_key`), and
    LangGraph applies a step's writes in that order; an ICU or `en_US` database sorts
    "Writer" after "researcher", code points before it. Sends of old checkpoints too."""
    paths = ["~__pregel_pull, researcher", "~__pregel_pull, Writer", "~__pregel_pull, _tidy"]
    expected = sorted(paths)
    assert expected != sorted(paths, key=str.lower)  # what such a collation would give
    async with ConversationCheckpointer.from_dsn(icu_dsn, min_size=1, max_size=2) as saver:
        thread = str(uuid.uuid4())
        parent = await saver.aput(root(thread), empty_checkpoint(), {}, {})
        for path in paths:
            await saver.aput_writes(parent, [(TASKS, path)], task_id=path[-3:], task_path=path)
        tup = await saver.aget_tuple(parent)
        assert [w[2] for w in tup.pending_writes] == expected
        cp0 = tup.checkpoint
        child = await saver.aput(parent, create_checkpoint(cp0, {}, 1), {}, {})
        assert (await saver.aget_tuple(child)).checkpoint["channel_values"][TASKS] == expected
