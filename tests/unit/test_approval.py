"""Approve before acting, its pure parts (issue 25, point 3): which calls wait, what the
interrupt asks, which answer approves what, the graph's shape with and without
`AGENT_CONFIRM_TOOLS`, and the API's checks of an answer."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.messages.tool import tool_call
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.constants import TASKS
from langgraph.types import Command

from src.agent.approval import (
    approval_request,
    approved_ids,
    calls_to_confirm,
    declined_result,
    is_declined,
    route_after_model,
)
from src.agent.graph import build_graph
from src.agent.offline_model import OfflineChatModel
from src.agent.tools import build_tools
from src.api.approval_schemas import ResumeRequest
from src.api.errors import ApiError
from src.api.turn_identity import ApprovalPendingError
from src.api.turn_resume import asked_ids, check_answer
from src.config.settings import TOOL_NAMES, SettingsError, load_settings

WEATHER = tool_call(name="get_weather", args={"city": "Paris"}, id="w1")
STOCK = tool_call(name="get_stock_price", args={"ticker": "MSFT"}, id="s1")
REPLY = AIMessage("", tool_calls=[WEATHER, STOCK])
CONFIRM = {"get_stock_price"}


def offline(**overrides: Any) -> Any:
    return load_settings(
        _env_file=None, weather_provider="offline", stock_provider="offline", **overrides
    )


def test_only_the_calls_of_confirmed_tools_wait() -> None:
    assert calls_to_confirm(REPLY, CONFIRM) == [STOCK]
    assert calls_to_confirm(REPLY, set()) == []
    assert calls_to_confirm(None, CONFIRM) == []
    route = route_after_model(CONFIRM)
    assert route({"messages": [HumanMessage("hi"), REPLY]}) == "approve"
    assert route({"messages": [AIMessage("", tool_calls=[WEATHER])]}) == "tools"
    assert route({"messages": [AIMessage("Hello")]}) == "__end__"


def test_the_question_names_each_call() -> None:
    assert approval_request([STOCK]) == {
        "kind": "tool_approval",
        "question": "Run get_stock_price?",
        "tool_calls": [{"id": "s1", "tool": "get_stock_price", "args": {"ticker": "MSFT"}}],
    }
    assert approval_request([STOCK, WEATHER])["question"] == "Run these tools?"


@pytest.mark.parametrize(
    ("answer", "approved"),
    [
        ({"approved": True}, {"s1", "w1"}),
        ({"approved": False}, set()),
        ({"approved": ["w1", "nope"]}, {"w1"}),
        ({"approved": "yes"}, set()),  # only an explicit approval runs a tool
        (True, set()),
        (None, set()),
    ],
)
def test_only_an_explicit_answer_approves(answer: Any, approved: set[str]) -> None:
    assert approved_ids(answer, [STOCK, WEATHER]) == approved


def test_a_declined_result_answers_its_call_and_is_marked() -> None:
    result = declined_result(STOCK)
    assert (result.tool_call_id, result.name, result.status) == ("s1", "get_stock_price", "error")
    assert "declined" in str(result.content)
    assert is_declined(result)
    assert not is_declined(ToolMessage("ok", tool_call_id="s1"))


def test_the_graph_is_unchanged_without_the_setting() -> None:
    plain = build_graph(offline(), model=OfflineChatModel())
    assert set(plain.get_graph().nodes) == {"__start__", "model", "tools", "__end__"}
    confirm = build_graph(offline(agent_confirm_tools="get_stock_price"), model=OfflineChatModel())
    assert "approve" in confirm.get_graph().nodes


def test_an_unknown_tool_is_refused_at_start_up() -> None:
    assert tuple(tool.name for tool in build_tools(offline())) == TOOL_NAMES
    with pytest.raises(SettingsError, match=r"AGENT_CONFIRM_TOOLS: .*unknown tool rm"):
        offline(agent_confirm_tools="get_weather,rm")


async def test_a_graph_pauses_and_runs_only_what_was_approved() -> None:
    saver = InMemorySaver()
    graph = build_graph(
        offline(agent_confirm_tools="get_stock_price"), model=OfflineChatModel(), checkpointer=saver
    )
    config: Any = {"configurable": {"thread_id": "t"}}
    await graph.ainvoke({"messages": [("user", "Weather in Paris and the price of MSFT?")]}, config)
    state = await graph.aget_state(config)
    assert state.next == ("approve",)
    assert [c["tool"] for c in state.interrupts[0].value["tool_calls"]] == ["get_stock_price"]
    await graph.ainvoke(Command(resume={"approved": False}), config)
    messages = (await graph.aget_state(config)).values["messages"]
    results = {m.name: m for m in messages if isinstance(m, ToolMessage)}
    assert is_declined(results["get_stock_price"])
    assert not is_declined(results["get_weather"]) and results["get_weather"].status != "error"
    # The stored Sends carry their call, not a copy of the conversation.
    sends = [
        saver.serde.loads_typed(value)
        for writes in saver.writes.values()
        for _, channel, value, _ in writes.values()
        if channel == TASKS
    ]
    assert [send.arg["tool_call"]["name"] for send in sends] == ["get_weather"]
    assert all(send.arg["state"] == {} for send in sends)


def test_the_api_checks_the_answer_against_the_calls_asked() -> None:
    value = approval_request([STOCK, WEATHER])
    assert asked_ids(value) == ["s1", "w1"]
    check_answer(ResumeRequest(approved=["w1"]), value)
    with pytest.raises(ApiError, match="'x9' names no tool call awaiting approval"):
        check_answer(ResumeRequest(approved=["w1", "x9"]), value)
    assert ResumeRequest(approved=True).decision(["s1", "w1"]) == "approved"
    assert ResumeRequest(approved=False).decision(["s1", "w1"]) == "declined"
    assert ResumeRequest(approved=["w1"]).decision(["s1", "w1"]) == "partial"
    with pytest.raises(ValueError):
        ResumeRequest(approved="true")  # type: ignore[arg-type]


def test_a_pending_approval_is_named_in_the_refusal() -> None:
    asked = approval_request([STOCK])
    api_turn = str(ApprovalPendingError("t-1", asked))
    assert "Turn 't-1'" in api_turn and "of get_stock_price" in api_turn
    assert "/turns/t-1/resume" in api_turn
    assert "LangGraph Studio" in str(ApprovalPendingError(None, asked))
