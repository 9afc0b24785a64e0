"""Checkpoint retention (issue 27, point 1) on a real PostgreSQL: a long thread with a fork,
subgraph calls (one `checkpointer=True`), and an `interrupt()` pending inside a call, pruned
to its latest 10 checkpoints. The kept checkpoints read back exactly as before (state and
history), the transcript and the branches' messages are unchanged, and the next turn sends
the model exactly the request a copy of the unpruned thread sends."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from typing import Annotated, Any, TypedDict

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langgraph.channels.delta import DeltaChannel
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.graph.message import _messages_delta_reducer
from langgraph.types import Command

from src.agent.memory import ConversationCheckpointer, session_id_for
from src.agent.memory.retention import RetentionPolicy
from tests.support import cfg, plant_expired_lease, subgraph_calls_graph

LATEST_10 = RetentionPolicy(keep_latest=10)


def conversation_graph(saver: Any, requests: list[list[tuple[str, str]]]) -> Any:
    """`subgraph_calls_graph` (a subgraph per call that interrupts when the turn says
    "ask", a `checkpointer=True` subgraph) and then `model`, which records the messages it
    is sent (the model request) and answers."""

    def model(state: MessagesState) -> dict:
        requests.append([(m.type, str(m.content)) for m in state["messages"]])
        return {"messages": [AIMessage(f"answer {len(state['messages'])}")]}

    return subgraph_calls_graph(saver, then=model)


async def stored(saver: ConversationCheckpointer, thread: str) -> dict[str, Any]:
    """The rows of the thread: checkpoints per kind, the transcript, every message."""
    sid = session_id_for(thread)
    pool = saver.store.pool
    return {
        "checkpoints": await pool.fetchval(
            "SELECT count(*) FROM checkpoints WHERE session_id = $1", sid
        ),
        "transcript": json.loads(
            await pool.fetchval(
                "SELECT messages::text FROM conversations WHERE session_id = $1", sid
            )
        ),
        "others": await pool.fetch(
            "SELECT seq, element::text FROM conversation_messages WHERE session_id = $1 "
            "ORDER BY seq",
            sid,
        ),
        "head": await pool.fetchrow("SELECT * FROM transcript_heads WHERE session_id = $1", sid),
    }


async def history(graph: Any, thread: str) -> dict[str, Any]:
    return {
        s.config["configurable"]["checkpoint_id"]: s
        async for s in graph.aget_state_history(cfg(thread))
    }


async def long_thread(graph: Any, thread: str) -> None:
    """Twelve turns, a fork from the fourth one continued for three turns, then a turn
    stopped at an `interrupt()` inside a subgraph call."""
    for i in range(12):
        await graph.ainvoke({"messages": [HumanMessage(f"question {i}")]}, cfg(thread))
    turn_ends = [s for s in (await history(graph, thread)).values() if not s.next]
    fork = turn_ends[::-1][3]
    forked = await graph.aupdate_state(fork.config, {"messages": [HumanMessage("take two")]})
    await graph.ainvoke(None, forked)
    for i in range(3):
        await graph.ainvoke({"messages": [HumanMessage(f"again {i}")]}, cfg(thread))
    await graph.ainvoke({"messages": [HumanMessage("please ask")]}, cfg(thread))


async def test_latest_10_keeps_the_record_and_the_next_turn_exact(saver) -> None:
    requests: list[list[tuple[str, str]]] = []
    graph = conversation_graph(saver, requests)
    thread, control = str(uuid.uuid4()), str(uuid.uuid4())
    await long_thread(graph, thread)
    before = await history(graph, thread)
    state_before = await graph.aget_state(cfg(thread), subgraphs=True)
    rows_before = await stored(saver, thread)
    branches_before = await saver.branches(thread)
    assert state_before.interrupts and state_before.tasks[0].state is not None
    await saver.acopy_thread(thread, control)  # the same thread, never pruned

    retained = await saver.aretain(thread, LATEST_10)

    rows_after = await stored(saver, thread)
    assert not retained.busy and retained.checkpoints > 0 and retained.bytes > 0
    assert rows_after["checkpoints"] == rows_before["checkpoints"] - retained.checkpoints
    after = await history(graph, thread)
    assert len(after) == 10 and set(after) <= set(before)
    assert max(after) == max(before)  # the head
    for checkpoint_id, snapshot in after.items():
        was = before[checkpoint_id]
        if snapshot.parent_config is None:  # its parent went: the history starts here
            assert was.parent_config is not None
            assert was.parent_config["configurable"]["checkpoint_id"] not in after
        else:
            assert snapshot.parent_config == was.parent_config
        assert snapshot._replace(parent_config=None) == was._replace(parent_config=None)
    assert await graph.aget_state(cfg(thread), subgraphs=True) == state_before
    assert rows_after["transcript"] == rows_before["transcript"]
    assert rows_after["others"] == rows_before["others"]  # no message is deleted
    assert rows_after["head"] == rows_before["head"]
    # The branch the fork left counts like any other: its tip was older than the latest 10,
    # so it went; its messages stay (`others` above).
    assert [b.shown for b in branches_before] == [True, False]
    assert await saver.branches(thread) == branches_before[:1]

    # The next turn: the interrupted call resumes, and the model gets the same request.
    requests.clear()
    await graph.ainvoke(Command(resume="yes"), cfg(thread))
    await graph.ainvoke(Command(resume="yes"), cfg(control))
    assert len(requests) == 2 and requests[0] == requests[1]
    assert ("ai", "plan: ok yes") in requests[0]
    await graph.ainvoke({"messages": [HumanMessage("and now?")]}, cfg(thread))
    await graph.ainvoke({"messages": [HumanMessage("and now?")]}, cfg(control))
    assert requests[2] == requests[3]
    ours, theirs = await stored(saver, thread), await stored(saver, control)
    n = len(rows_before["transcript"])
    assert ours["transcript"][:n] == theirs["transcript"][:n] == rows_before["transcript"]
    said = [[(m["role"], m["content"]) for m in t["transcript"][n:]] for t in (ours, theirs)]
    assert said[0] == said[1] and len(said[0]) > 2  # new messages: new ids and times


async def test_a_second_prune_changes_nothing_and_off_keeps_everything(saver) -> None:
    graph = conversation_graph(saver, [])
    thread = str(uuid.uuid4())
    for i in range(4):
        await graph.ainvoke({"messages": [HumanMessage(f"q {i}")]}, cfg(thread))
    count = (await stored(saver, thread))["checkpoints"]
    assert (await saver.aretain(thread, RetentionPolicy())).checkpoints == 0
    first = await saver.aretain(thread, RetentionPolicy(keep_latest=3))
    assert first.checkpoints > 0
    again = await saver.aretain(thread, RetentionPolicy(keep_latest=3))
    assert again.checkpoints == again.blobs == again.writes == 0
    assert (await stored(saver, thread))["checkpoints"] == count - first.checkpoints
    unknown = await saver.aretain(str(uuid.uuid4()), LATEST_10)
    assert not unknown.busy and unknown.checkpoints == 0


async def test_checkpoints_younger_than_max_age_stay(saver) -> None:
    graph = conversation_graph(saver, [])
    thread = str(uuid.uuid4())
    sid = session_id_for(thread)
    for i in range(3):
        await graph.ainvoke({"messages": [HumanMessage(f"q {i}")]}, cfg(thread))
    pool = saver.store.pool
    await pool.execute(
        "UPDATE checkpoints SET created_at = created_at - interval '2 hours' WHERE session_id = $1",
        sid,
    )
    await graph.ainvoke({"messages": [HumanMessage("recent")]}, cfg(thread))
    young = await pool.fetchval(
        "SELECT count(*) FROM checkpoints WHERE session_id = $1 AND checkpoint_ns = '' "
        "AND created_at > now() - interval '1 hour'",
        sid,
    )

    await saver.aretain(thread, RetentionPolicy(max_age=timedelta(hours=1)))

    roots = await pool.fetchval(
        "SELECT count(*) FROM checkpoints WHERE session_id = $1 AND checkpoint_ns = ''", sid
    )
    assert roots == young  # the old turns' checkpoints went, the last turn's stayed
    due = await pool.fetchval("SELECT due_at FROM checkpoint_retention WHERE session_id = $1", sid)
    assert due is not None  # when the last turn's checkpoints fall out in turn


class DeltaState(TypedDict):
    messages: Annotated[
        list[BaseMessage], DeltaChannel(_messages_delta_reducer, snapshot_frequency=4)
    ]


def delta_graph(saver: Any, requests: list[list[str]]) -> Any:
    def model(state: DeltaState) -> dict:
        requests.append([str(m.content) for m in state["messages"]])
        return {"messages": [AIMessage(f"answer {len(state['messages'])}")]}

    builder = StateGraph(DeltaState)
    builder.add_node("model", model)
    builder.add_edge(START, "model")
    builder.add_edge("model", END)
    return builder.compile(checkpointer=saver)


async def test_a_delta_channel_keeps_the_history_back_to_its_seed(saver) -> None:
    requests: list[list[str]] = []
    graph = delta_graph(saver, requests)
    thread, control = str(uuid.uuid4()), str(uuid.uuid4())
    for i in range(7):
        await graph.ainvoke({"messages": [HumanMessage(f"q {i}")]}, cfg(thread))
    before = await history(graph, thread)
    await saver.acopy_thread(thread, control)

    retained = await saver.aretain(thread, RetentionPolicy(keep_latest=2))

    after = await history(graph, thread)
    assert retained.checkpoints > 0 and len(after) > 2  # the seed's ancestors stayed
    for checkpoint_id, snapshot in after.items():
        was = before[checkpoint_id]
        assert snapshot.values == was.values and snapshot.next == was.next
    requests.clear()
    await graph.ainvoke({"messages": [HumanMessage("next")]}, cfg(thread))
    await graph.ainvoke({"messages": [HumanMessage("next")]}, cfg(control))
    assert requests[0] == requests[1] and len(requests[0]) == 15


async def test_a_session_a_turn_holds_is_left_alone(saver) -> None:
    graph = conversation_graph(saver, [])
    thread = str(uuid.uuid4())
    for i in range(3):
        await graph.ainvoke({"messages": [HumanMessage(f"q {i}")]}, cfg(thread))
    count = (await stored(saver, thread))["checkpoints"]
    await saver.store.pool.execute(
        "INSERT INTO turn_leases (session_id, run_id, expires_at) "
        "VALUES ($1, $2, now() + interval '1 minute')",
        session_id_for(thread),
        uuid.uuid4(),
    )
    assert (await saver.aretain(thread, LATEST_10)).busy
    await saver.aretain_due(RetentionPolicy(keep_latest=1), limit=10_000)
    assert (await stored(saver, thread))["checkpoints"] == count


async def test_the_pass_prunes_what_changed_since_the_last_one(saver) -> None:
    graph = conversation_graph(saver, [])
    threads = [str(uuid.uuid4()) for _ in range(3)]
    for thread in threads:
        for i in range(3):
            await graph.ainvoke({"messages": [HumanMessage(f"q {i}")]}, cfg(thread))
    await plant_expired_lease(saver.store.pool, threads[2])  # a dead worker's: not a turn
    policy = RetentionPolicy(keep_latest=2)
    sids = {session_id_for(t) for t in threads}

    first = await saver.aretain_due(policy, batch=1, limit=10_000)
    again = await saver.aretain_due(policy, batch=1, limit=10_000)

    marked = await saver.store.pool.fetchval(
        "SELECT count(*) FROM checkpoint_retention WHERE session_id = ANY($1::uuid[])", list(sids)
    )
    assert marked == 3 and first.sessions >= 3 and first.checkpoints > 0
    assert again.checkpoints == 0  # nothing changed since
    await graph.ainvoke({"messages": [HumanMessage("more")]}, cfg(threads[0]))
    third = await saver.aretain_due(policy, limit=10_000)
    assert third.sessions >= 1 and third.checkpoints > 0
    for thread in threads:
        roots = await saver.store.pool.fetchval(
            "SELECT count(*) FROM checkpoints WHERE session_id = $1 AND checkpoint_ns = ''",
            session_id_for(thread),
        )
        assert roots == 2
