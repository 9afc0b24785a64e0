"""One saver shared by many coroutines stores exactly what was put, whatever the interleaving.

A seeded, randomized stress run: several threads, each a tree of checkpoints grown by
concurrent writers (linear steps, forks from older checkpoints, replaced and removed
messages, id-less messages) while readers poll the latest checkpoint and the history of the
same threads. Every checkpoint is then read back through a fresh saver (nothing cached) and
compared with what was put; every read made during the run is compared too. Finally each
thread's `conversations.messages` must be the messages of its latest root checkpoint.
"""

from __future__ import annotations

import asyncio
import itertools
import operator
import random
import uuid
from dataclasses import dataclass, field
from typing import Annotated, TypedDict

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langgraph.checkpoint.base import empty_checkpoint
from langgraph.checkpoint.base.id import uuid6
from langgraph.graph import END, START, StateGraph

from src.agent.memory import ConversationCheckpointer, PostgresMemoryStore, session_id_for
from tests.support import chat_graph, echo_text

SEED = 20261126


def view(messages: list[BaseMessage] | None) -> list[tuple]:
    """What must round-trip exactly, in a form that compares and prints well."""
    return [(type(m).__name__, m.id, m.content) for m in messages or ()]


@dataclass
class Put:
    checkpoint_id: str
    parent_id: str | None
    messages: list[BaseMessage]
    counter: int


@dataclass
class ThreadPlan:
    """What has been put on one thread so far (only checkpoints whose `aput` returned)."""

    thread_id: str
    puts: dict[str, Put] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)  # checkpoint id -> messages version


def new_message(rng: random.Random, tag: str) -> BaseMessage:
    kind = rng.choice(["human", "ai", "tool", "noid"])
    text = f"{tag} {rng.random():.6f}"
    if kind == "human":
        return HumanMessage(text, id=f"h-{uuid.uuid4().hex[:8]}")
    if kind == "ai":
        return AIMessage(text, id=f"a-{uuid.uuid4().hex[:8]}")
    if kind == "tool":
        return ToolMessage(text, tool_call_id="c1", id=f"t-{uuid.uuid4().hex[:8]}")
    return HumanMessage(text)  # no id: a plain list channel's message


async def put_child(
    saver: ConversationCheckpointer, plan: ThreadPlan, rng: random.Random, parent: Put | None
) -> Put:
    """Put a child of `parent` (a new root when None): messages extended, edited or trimmed."""
    messages = list(parent.messages) if parent else []
    action = rng.random()
    if messages and action < 0.15:  # replace a message: same id, new content
        i = rng.randrange(len(messages))
        messages[i] = messages[i].model_copy(update={"content": f"edited {rng.random():.6f}"})
    elif messages and action < 0.25:  # remove one
        messages.pop(rng.randrange(len(messages)))
    else:
        messages.extend(new_message(rng, plan.thread_id[:4]) for _ in range(rng.randint(1, 3)))
    checkpoint = empty_checkpoint()
    checkpoint["id"] = str(uuid6())
    counter = (parent.counter if parent else 0) + 1
    parent_version = plan.versions.get(parent.checkpoint_id) if parent else None
    version = saver.get_next_version(parent_version, None)
    checkpoint["channel_values"] = {"messages": messages, "counter": counter}
    checkpoint["channel_versions"] = {"messages": version, "counter": version}
    config = {"configurable": {"thread_id": plan.thread_id, "checkpoint_ns": ""}}
    if parent:
        config["configurable"]["checkpoint_id"] = parent.checkpoint_id
    await saver.aput(
        config,
        checkpoint,
        {"source": "loop", "step": counter, "parents": {}},
        {"messages": version, "counter": version},
    )
    put = Put(checkpoint["id"], parent.checkpoint_id if parent else None, messages, counter)
    plan.puts[put.checkpoint_id] = put
    plan.versions[put.checkpoint_id] = version
    return put


async def check_read(saver: ConversationCheckpointer, plan: ThreadPlan, wrong: list) -> None:
    """A reader: every checkpoint it sees that was already put must read back exactly."""
    known = dict(plan.puts)  # puts completed before this read started
    config = {"configurable": {"thread_id": plan.thread_id, "checkpoint_ns": ""}}
    if known and random.random() < 0.5:
        put = random.choice(list(known.values()))
        config["configurable"]["checkpoint_id"] = put.checkpoint_id
        found = await saver.aget_tuple(config)
        tuples = [found] if found else []
    else:
        tuples = [t async for t in saver.alist(config, limit=20)]
    for t in tuples:
        put = known.get(t.config["configurable"]["checkpoint_id"])
        if put and view(t.checkpoint["channel_values"].get("messages")) != view(put.messages):
            wrong.append(("during run", plan.thread_id, put.checkpoint_id))


async def stored_twice(store: PostgresMemoryStore, thread_id: str) -> int:
    """Messages held both by the transcript and by `conversation_messages`."""
    return await store.pool.fetchval(
        "SELECT count(*) FROM conversation_messages m JOIN transcript_heads h USING "
        "(session_id) WHERE m.session_id = $1 AND m.seq = ANY (h.seqs)",
        session_id_for(thread_id),
    )


async def test_concurrent_forks_writes_and_reads_store_exactly_what_was_put(
    pooled_saver, pooled_store: PostgresMemoryStore
) -> None:
    rng = random.Random(SEED)
    plans = [ThreadPlan(str(uuid.uuid4())) for _ in range(4)]
    wrong: list[tuple] = []
    stop = asyncio.Event()

    async def writer(plan: ThreadPlan, wrng: random.Random) -> None:
        for _ in range(12):
            parents = list(plan.puts.values())
            parent = wrng.choice(parents) if parents and wrng.random() < 0.9 else None
            if parents and wrng.random() < 0.6:  # most steps extend the newest checkpoint
                parent = max(parents, key=lambda p: p.checkpoint_id)
            await put_child(pooled_saver, plan, wrng, parent)

    async def reader(plan: ThreadPlan) -> None:
        while not stop.is_set():
            if random.random() < 0.3:  # evicted, as by the cache's bound: everyone reloads
                pooled_saver.message_logs.invalidate(session_id_for(plan.thread_id))
            await check_read(pooled_saver, plan, wrong)

    def thread_reader(plan: ThreadPlan) -> None:
        """The sync API from another OS thread (as LangGraph's sync `invoke` uses it)."""
        while not stop.is_set():
            known = dict(plan.puts)
            config = {"configurable": {"thread_id": plan.thread_id, "checkpoint_ns": ""}}
            for t in pooled_saver.list(config, limit=10):
                put = known.get(t.config["configurable"]["checkpoint_id"])
                if put and view(t.checkpoint["channel_values"].get("messages")) != view(
                    put.messages
                ):
                    wrong.append(("thread read", plan.thread_id, put.checkpoint_id))

    readers = [asyncio.create_task(reader(p)) for p in plans for _ in range(2)]
    readers += [asyncio.create_task(asyncio.to_thread(thread_reader, p)) for p in plans[:2]]
    # Three writers per thread: forks of one checkpoint race each other.
    writers = [writer(p, random.Random(rng.random())) for p in plans for _ in range(3)]
    try:
        await asyncio.gather(*writers)
    finally:
        stop.set()
        await asyncio.gather(*readers, return_exceptions=True)
    for task in readers:
        assert task.exception() is None, task.exception()

    fresh = ConversationCheckpointer(pooled_store)
    total = 0
    for plan in plans:
        for put in plan.puts.values():
            total += 1
            config = {
                "configurable": {
                    "thread_id": plan.thread_id,
                    "checkpoint_ns": "",
                    "checkpoint_id": put.checkpoint_id,
                }
            }
            found = await fresh.aget_tuple(config)
            values = found.checkpoint["channel_values"] if found else {}
            if (
                view(values.get("messages")) != view(put.messages)
                or values.get("counter") != put.counter
            ):
                wrong.append(("fresh read", plan.thread_id, put.checkpoint_id))
        latest = max(plan.puts.values(), key=lambda p: p.checkpoint_id)
        transcript = await pooled_store.get_messages(session_id_for(plan.thread_id))
        shown = [(m["id"], m["content"]) for m in transcript or ()]
        if shown != [(m.id, m.content) for m in latest.messages]:
            wrong.append(("transcript is not the latest checkpoint", plan.thread_id, shown))
        if await stored_twice(pooled_store, plan.thread_id):
            wrong.append(("a message is stored twice", plan.thread_id, None))
    assert total == 4 * 3 * 12
    assert wrong == [], f"{len(wrong)} wrong of {total}: {wrong[:5]}"


async def test_graph_run_with_state_pollers_on_the_same_thread_stays_exact(
    pooled_saver, pooled_store: PostgresMemoryStore
) -> None:
    """Studio polls state while a run writes: the stored history must stay exact."""
    thread = str(uuid.uuid4())
    cfg = {"configurable": {"thread_id": thread}}
    graph = chat_graph(pooled_saver)
    stop = asyncio.Event()

    async def poll() -> None:
        while not stop.is_set():
            await graph.aget_state(cfg)
            async for _ in graph.aget_state_history(cfg, limit=5):
                pass
            await asyncio.sleep(0)

    pollers = [asyncio.create_task(poll()) for _ in range(2)]
    for i in range(15):
        await graph.ainvoke({"messages": [HumanMessage(f"question {i}", id=f"q{i}")]}, cfg)
    stop.set()
    await asyncio.gather(*pollers)

    fresh = chat_graph(ConversationCheckpointer(pooled_store))
    history = [s async for s in fresh.aget_state_history(cfg)]
    lists = [view(s.values.get("messages")) for s in reversed(history)]
    for before, after in itertools.pairwise(lists):
        assert after[: len(before)] == before, "a checkpoint lost or changed earlier messages"
    final = lists[-1]
    assert [m[2] for m in final[::2]] == [f"question {i}" for i in range(15)]
    assert [m[2] for m in final[1::2]] == [echo_text(2 * i + 1) for i in range(15)]
    transcript = await pooled_store.get_messages(uuid.UUID(thread))
    assert [(m["id"], m["content"]) for m in transcript] == [(m[1], m[2]) for m in final]


class PlainListState(TypedDict):
    messages: Annotated[list, operator.add]


async def test_a_plain_list_channel_is_not_re_appended_at_every_step(saver, store) -> None:
    """A messages channel that is a plain list of id-less messages stores each once."""

    def reply(state: PlainListState) -> dict:
        return {"messages": [AIMessage(f"reply to {state['messages'][-1].content}")]}

    builder = StateGraph(PlainListState)
    builder.add_node("reply", reply)
    builder.add_edge(START, "reply")
    builder.add_edge("reply", END)
    graph = builder.compile(checkpointer=saver)
    thread = str(uuid.uuid4())
    for i in range(10):
        await graph.ainvoke(
            {"messages": [HumanMessage(f"q{i}")]}, {"configurable": {"thread_id": thread}}
        )
    transcript = await store.get_messages(uuid.UUID(thread))
    assert len(transcript) == 20
    numbered, elsewhere = await store.pool.fetchrow(
        "SELECT next_seq, (SELECT count(*) FROM conversation_messages m WHERE m.session_id = "
        "h.session_id) FROM transcript_heads h WHERE session_id = $1",
        uuid.UUID(thread),
    )
    assert (numbered, elsewhere) == (20, 0)  # each message stored once, in the transcript


async def test_transcript_is_the_current_branch_after_forks_and_edits(
    pooled_saver, pooled_store
) -> None:
    """Studio's "edit message", `update_state` from an older checkpoint, a run from a
    `checkpoint_id`: the transcript follows the thread's latest checkpoint, and older
    branches still read back exactly through time travel."""
    thread = str(uuid.uuid4())
    cfg = {"configurable": {"thread_id": thread}}
    graph = chat_graph(pooled_saver)
    for i in range(3):
        await graph.ainvoke({"messages": [HumanMessage(f"question {i}", id=f"q{i}")]}, cfg)
    history = [s async for s in graph.aget_state_history(cfg)]
    before = {
        s.config["configurable"]["checkpoint_id"]: view(s.values.get("messages")) for s in history
    }
    after_first_turn = next(s for s in history if len(s.values.get("messages", [])) == 2)

    async def transcript() -> list[tuple]:
        rows = await pooled_store.get_messages(uuid.UUID(thread))
        return [(m["id"], m["content"]) for m in rows]

    async def current() -> list[tuple]:
        state = await graph.aget_state(cfg)
        return [(m.id, m.content) for m in state.values["messages"]]

    # Edit the first question as Studio does: update_state on an older checkpoint.
    edited = HumanMessage("question 0, edited", id="q0")
    forked = await graph.aupdate_state(after_first_turn.config, {"messages": [edited]})
    assert len(await current()) == 2 and await transcript() == await current()
    # Run on from the fork, then from an older checkpoint id directly.
    await graph.ainvoke({"messages": [HumanMessage("branch b", id="qb")]}, forked)
    assert len(await current()) == 4 and await transcript() == await current()
    await graph.ainvoke({"messages": [HumanMessage("branch c", id="qc")]}, after_first_turn.config)
    assert len(await current()) == 4 and await transcript() == await current()
    assert (await current())[2] == ("qc", "branch c")

    # Back on the first branch: its messages leave `conversation_messages` again.
    await graph.ainvoke({"messages": [HumanMessage("back", id="qd")]}, history[0].config)
    assert len(await current()) == 8 and await transcript() == await current()
    assert await stored_twice(pooled_store, thread) == 0
    fresh = chat_graph(ConversationCheckpointer(pooled_store))
    for checkpoint_id, messages in before.items():
        config = {"configurable": {"thread_id": thread, "checkpoint_id": checkpoint_id}}
        assert view((await fresh.aget_state(config)).values.get("messages")) == messages
