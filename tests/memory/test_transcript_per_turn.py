"""The transcript is rewritten once per turn, and is current at the end of every turn.

`conversations.messages` is one JSONB value: PostgreSQL rewrites it whole (TOAST and all)
at every update, so rewriting it at each step of a tool turn (question, tool call, tool
result, answer) made the write cost grow with four times the square of the conversation.
While the graph still has a task to run, a step's new messages go to the append-only
`conversation_messages` instead; the step that ends the run (no task left), a failed or
interrupted step, or any step whose continuation can't be proven shows them all in one
rewrite. Nothing a step wrote is lost in between: a run that dies mid-turn leaves its
messages readable (state, history, `store.get_messages`) and the next turn's end shows
them in `conversations.messages`.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import asyncpg
import pytest
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langgraph.errors import GraphRecursionError
from langgraph.graph import MessagesState
from langgraph.types import interrupt

from src.agent.memory import ConversationCheckpointer, session_id_for
from src.api.security import Principal
from src.api.session_directory import SessionDirectory
from tests.support import model_and_tools_graph

COUNT_REWRITES = """
CREATE TABLE IF NOT EXISTS transcript_rewrites (session_id UUID, n INTEGER);
CREATE OR REPLACE FUNCTION count_transcript_rewrite() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO transcript_rewrites VALUES (NEW.session_id, 1);
    RETURN NEW;
END $$;
DROP TRIGGER IF EXISTS count_transcript_rewrite ON conversations;
CREATE TRIGGER count_transcript_rewrite BEFORE UPDATE OF messages ON conversations
FOR EACH ROW WHEN (OLD.messages IS DISTINCT FROM NEW.messages)
EXECUTE FUNCTION count_transcript_rewrite();
"""


class ModelDown(RuntimeError):
    """The model provider failed."""


def tool_graph(checkpointer: Any, *, fail_after_tool: bool = False, ask: bool = False) -> Any:
    """model -> tools -> model, one tool call per question (Vera's "price of X?" turn)."""

    def model(state: MessagesState) -> dict:
        last = state["messages"][-1]
        if isinstance(last, HumanMessage):
            call = {
                "name": "get_stock_price",
                "args": {"symbol": "AAPL"},
                "id": f"call_{uuid.uuid4().hex[:8]}",
            }
            return {"messages": [AIMessage("", tool_calls=[call], id=f"ai-{uuid.uuid4()}")]}
        if fail_after_tool:
            raise ModelDown("model provider down")
        return {"messages": [AIMessage(f"It is {last.content}.", id=f"ai-{uuid.uuid4()}")]}

    def tools(state: MessagesState) -> dict:
        call = state["messages"][-1].tool_calls[0]
        if ask:
            interrupt("approve the tool call?")
        result = json.dumps({"symbol": "AAPL", "price": 123.45})
        return {"messages": [ToolMessage(result, tool_call_id=call["id"], id=f"t-{uuid.uuid4()}")]}

    return model_and_tools_graph(checkpointer, model, tools)


async def shown(db: asyncpg.Connection, thread: str) -> list[str]:
    """The ids of the messages `conversations.messages` shows."""
    text = await db.fetchval(
        "SELECT messages::text FROM conversations WHERE session_id = $1", session_id_for(thread)
    )
    return [m["id"] for m in json.loads(text or "[]")]


async def rewrites(db: asyncpg.Connection, thread: str) -> int:
    return await db.fetchval(
        "SELECT count(*) FROM transcript_rewrites WHERE session_id = $1", session_id_for(thread)
    )


async def state_ids(graph: Any, config: dict) -> list[str]:
    return [m.id for m in (await graph.aget_state(config)).values["messages"]]


@pytest.fixture
async def counted(db: asyncpg.Connection, saver: ConversationCheckpointer) -> asyncpg.Connection:
    await db.execute(COUNT_REWRITES)
    return db


async def test_a_tool_turn_rewrites_the_transcript_once(
    saver: ConversationCheckpointer, counted: asyncpg.Connection
) -> None:
    graph, thread = tool_graph(saver), f"tool-{uuid.uuid4()}"
    config = {"configurable": {"thread_id": thread}}
    for turn in range(1, 4):
        await graph.ainvoke({"messages": [HumanMessage(f"price of AAPL? #{turn}")]}, config)
        assert await rewrites(counted, thread) == turn  # four messages, one rewrite
        assert await shown(counted, thread) == await state_ids(graph, config)
    assert len(await shown(counted, thread)) == 12
    # Nothing is left behind in the append-only table once the turn is shown.
    left = await counted.fetchval(
        "SELECT count(*) FROM conversation_messages WHERE session_id = $1",
        session_id_for(thread),
    )
    assert left == 0


async def test_a_turn_that_fails_shows_what_it_stored(
    saver: ConversationCheckpointer, counted: asyncpg.Connection
) -> None:
    # LangGraph stores the failed step's error and the checkpoint before it concurrently:
    # several runs give both orders a chance.
    graph = tool_graph(saver, fail_after_tool=True)
    for _ in range(8):
        thread = f"fail-{uuid.uuid4()}"
        config = {"configurable": {"thread_id": thread}}
        with pytest.raises(ModelDown):
            await graph.ainvoke({"messages": [HumanMessage("price of AAPL?")]}, config)
        ids = await state_ids(graph, config)
        assert len(ids) == 3  # question, tool call, tool result
        assert await shown(counted, thread) == ids


async def test_an_interrupted_turn_shows_what_it_stored(
    saver: ConversationCheckpointer, counted: asyncpg.Connection
) -> None:
    graph = tool_graph(saver, ask=True)
    for _ in range(8):
        thread = f"ask-{uuid.uuid4()}"
        config = {"configurable": {"thread_id": thread}}
        await graph.ainvoke({"messages": [HumanMessage("price of AAPL?")]}, config)
        ids = await state_ids(graph, config)
        assert len(ids) == 2  # question, tool call: waiting for approval
        assert await shown(counted, thread) == ids


async def test_a_turn_cut_short_loses_nothing(store: Any, counted: asyncpg.Connection) -> None:
    """A worker dies after the tool step: its messages stay readable through a new saver
    (nothing cached), and the next turn's end shows them in the transcript."""
    thread = f"cut-{uuid.uuid4()}"
    config = {"configurable": {"thread_id": thread}}
    first = tool_graph(ConversationCheckpointer(store))
    stream = first.astream({"messages": [HumanMessage("price of AAPL?")]}, config)
    async for chunk in stream:
        if "tools" in chunk:
            break  # the process "dies" here: the final model step never runs
    await stream.aclose()
    fresh = tool_graph(ConversationCheckpointer(store))
    ids = await state_ids(fresh, config)
    assert len(ids) == 3
    # The transcript as the API reads it (`store.get_messages`) holds them too, and so
    # does the session list's message count.
    read = await store.get_messages(session_id_for(thread))
    assert [m["id"] for m in read] == ids
    directory, owner = SessionDirectory(store), Principal("default")
    await directory.claim(session_id_for(thread), owner)
    listed = (await directory.page(owner, 10, None)).sessions
    assert [s["message_count"] for s in listed if s["session_id"] == session_id_for(thread)] == [3]
    await fresh.ainvoke({"messages": [HumanMessage("and MSFT?")]}, config)
    final = await state_ids(fresh, config)
    assert final[:3] == ids and len(final) == 3 + 4
    assert await shown(counted, thread) == final


async def test_a_state_edit_is_shown_at_once(
    saver: ConversationCheckpointer, counted: asyncpg.Connection
) -> None:
    graph, thread = tool_graph(saver), f"edit-{uuid.uuid4()}"
    config = {"configurable": {"thread_id": thread}}
    await graph.ainvoke({"messages": [HumanMessage("price of AAPL?")]}, config)
    await graph.aupdate_state(config, {"messages": [HumanMessage("a note", id="note-1")]})
    assert (await shown(counted, thread))[-1] == "note-1"
    assert await shown(counted, thread) == await state_ids(graph, config)


async def test_a_run_stopped_without_a_write_catches_up_at_the_next_runs_end(
    saver: ConversationCheckpointer, counted: asyncpg.Connection
) -> None:
    """A static interrupt and LangGraph's recursion limit stop a run without a write the
    checkpointer sees: its messages are readable at once (state, `store.get_messages`) and
    the transcript shows them when the session's next run ends."""
    graph = tool_graph(saver)
    thread = f"stopped-{uuid.uuid4()}"
    config: dict[str, Any] = {"configurable": {"thread_id": thread}}
    sid = session_id_for(thread)

    await graph.ainvoke({"messages": [HumanMessage("price?")]}, config, interrupt_before=["tools"])
    paused = await state_ids(graph, config)
    assert len(paused) == 2
    assert [m["id"] for m in await saver.store.get_messages(sid)] == paused
    await graph.ainvoke(None, config)  # resumed: the run ends
    assert await shown(counted, thread) == await state_ids(graph, config)

    with pytest.raises(GraphRecursionError):
        await graph.ainvoke(
            {"messages": [HumanMessage("again?")]}, {**config, "recursion_limit": 2}
        )
    stopped = await state_ids(graph, config)
    assert [m["id"] for m in await saver.store.get_messages(sid)] == stopped
    await graph.ainvoke({"messages": [HumanMessage("and now?")]}, config)
    assert await shown(counted, thread) == await state_ids(graph, config)
