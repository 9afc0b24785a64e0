"""Vera's graph with the offline model, offline or faked tools, and a real PostgreSQL."""

from __future__ import annotations

import json
import uuid

import httpx
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage

from src.agent.context import INTERRUPTED_RESULT, select_window
from src.agent.graph import build_graph
from src.agent.tools import build_tools
from src.config.settings import load_settings
from tests.support import OFFLINE, ask, cfg


async def test_direct_answer_without_tools(saver) -> None:
    messages = await ask(build_graph(OFFLINE, checkpointer=saver), str(uuid.uuid4()), "Hello")
    assert [type(m) for m in messages] == [HumanMessage, AIMessage]
    assert "Vera" in messages[-1].content and not messages[-1].tool_calls


async def test_one_tool(pooled_saver) -> None:
    messages = await ask(
        build_graph(OFFLINE, checkpointer=pooled_saver),
        str(uuid.uuid4()),
        "What is the stock price of MSFT?",
    )
    assert messages[1].tool_calls[0]["name"] == "get_stock_price"
    quote = json.loads(messages[2].content)
    assert quote["ticker"] == "MSFT"
    assert str(quote["price"]) in messages[-1].content


async def test_both_tools_in_one_turn_answer_from_results(pooled_saver, pooled_store) -> None:
    thread = str(uuid.uuid4())
    messages = await ask(
        build_graph(OFFLINE, checkpointer=pooled_saver),
        thread,
        "What's the weather in Montevideo and the price of AAPL?",
    )
    calls = messages[1].tool_calls
    assert {c["name"] for c in calls} == {"get_weather", "get_stock_price"}
    results = {m.name: json.loads(m.content) for m in messages if isinstance(m, ToolMessage)}
    answer = messages[-1].content
    assert str(results["get_weather"]["temperature_c"]) in answer
    assert str(results["get_stock_price"]["price"]) in answer
    transcript = await pooled_store.get_messages(uuid.UUID(thread))
    assert [m["role"] for m in transcript] == ["user", "assistant", "tool", "tool", "assistant"]
    assert transcript[1]["tool_calls"][0]["id"] == transcript[2]["tool_call_id"]


async def test_tool_failure_becomes_an_apology(saver) -> None:
    down = httpx.AsyncClient(transport=httpx.MockTransport(lambda r: httpx.Response(500)))
    settings = load_settings(
        weather_provider="open-meteo", tool_max_attempts=1, openai_api_key=None
    )
    graph = build_graph(settings, tools=build_tools(settings, down), checkpointer=saver)
    messages = await ask(graph, str(uuid.uuid4()), "What's the weather in Paris?")
    tool_message = next(m for m in messages if isinstance(m, ToolMessage))
    assert tool_message.status == "error"
    # A short human text for the model and the user: no status code, no exception repr.
    assert tool_message.content == "The weather service is not working right now; try again later."
    assert messages[-1].content.startswith("Sorry, I couldn't get that")


async def test_invalid_tool_input_is_relayed(saver) -> None:
    messages = await ask(
        build_graph(OFFLINE, checkpointer=saver), str(uuid.uuid4()), "What's the weather in 12345?"
    )
    assert messages[-1].content.startswith("Sorry")


def tool_turn(n: int) -> list:
    call = {"name": "get_stock_price", "args": {"ticker": "AAPL"}, "id": f"c{n}"}
    return [
        HumanMessage(f"q{n}"),
        AIMessage("", tool_calls=[call]),
        ToolMessage("{}", tool_call_id=f"c{n}", name="get_stock_price"),
        AIMessage(f"a{n}"),
    ]


def test_window_never_splits_a_tool_pair() -> None:
    history = [m for n in range(6) for m in tool_turn(n)]
    for size in range(1, 12):
        window = select_window(history, size)
        assert len(window) <= size
        assert not window or not isinstance(window[0], ToolMessage)
        for i, message in enumerate(window):
            if isinstance(message, ToolMessage):
                assert isinstance(window[i - 1], AIMessage | ToolMessage)
                owner = next(m for m in reversed(window[:i]) if isinstance(m, AIMessage))
                assert message.tool_call_id in {c["id"] for c in owner.tool_calls}
    assert history == [m for n in range(6) for m in tool_turn(n)]  # nothing removed


def test_dangling_tool_call_is_repaired() -> None:
    history = [*tool_turn(0), *tool_turn(1)[:2], HumanMessage("are you there?")]
    window = select_window(history, 20)
    assert isinstance(window[-2], ToolMessage) and window[-2].content == INTERRUPTED_RESULT
    assert window[-2].tool_call_id == "c1"
    assert len(history) == 7  # the stored history is untouched


def test_invalid_tool_calls_are_answered_by_an_invalid_stand_in() -> None:
    valid = {"name": "get_stock_price", "args": {"ticker": "AAPL"}, "id": "ok1"}
    invalid = [
        {"name": "get_weather", "args": '{"city": Mont', "id": "bad1", "error": "not JSON"},
        {"name": None, "args": "{", "id": None, "error": "no id: nothing can answer it"},
    ]
    stored = AIMessage("", tool_calls=[valid], invalid_tool_calls=invalid)
    history = [HumanMessage("q"), stored, HumanMessage("and now?")]
    window = select_window(history, 20)
    assert [type(m).__name__ for m in window] == [
        "HumanMessage",
        "AIMessage",
        "ToolMessage",
        "ToolMessage",
        "HumanMessage",
    ]
    call = window[1]
    assert [c["id"] for c in call.tool_calls] == ["ok1", "bad1"] and not call.invalid_tool_calls
    assert call.tool_calls[1]["args"] == {}  # what the provider gets is valid JSON
    assert window[2].content == INTERRUPTED_RESULT
    assert window[3].tool_call_id == "bad1" and window[3].status == "error"
    assert "invalid" in window[3].content and '{"city": Mont' in window[3].content
    assert [c["id"] for c in stored.invalid_tool_calls] == ["bad1", None]  # untouched


async def test_dangling_history_reaches_model_repaired(saver) -> None:
    thread = str(uuid.uuid4())
    graph = build_graph(OFFLINE, checkpointer=saver)
    await graph.aupdate_state(cfg(thread), {"messages": tool_turn(0)[:2]}, as_node="model")
    messages = await ask(graph, thread, "Hello again")
    assert isinstance(messages[-1], AIMessage) and "Vera" in messages[-1].content
