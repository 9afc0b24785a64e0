"""A turn's tool calls and model steps are capped (`turn_limit`), and the session stays
usable afterwards (issue "Turns that survive anything", point 5e)."""

from __future__ import annotations

import uuid

import pytest
from langchain_core.messages import HumanMessage

from src.agent.errors import ModelTimeoutError, TurnLimitError
from src.agent.graph import build_graph, turn_so_far
from src.agent.model import build_chat_model
from src.config.settings import load_settings
from tests.api_harness import api_client, chat, settings_for
from tests.fake_openai import KEY, MODEL, FakeOpenAI, Reply, answer, names, transcript, vera
from tests.fakes import FakeModel


def stock_call(n: int) -> tuple[str, str, str]:
    return (f"call_{n}", "get_stock_price", '{"ticker": "AAPL"}')


async def test_one_reply_with_too_many_tool_calls_runs_none(database_dsn: str) -> None:
    fake = FakeOpenAI(Reply(tool_calls=[stock_call(n) for n in range(25)]), Reply(text="Hi!"))
    async with vera(database_dsn, fake) as client:  # default: 20 tool calls per turn
        sid = str(uuid.uuid4())
        events = await chat(client, sid, "Prices of everything")
        assert names(events) == ["session", "error"]
        assert events[-1].data["code"] == "turn_limit"
        after = await chat(client, sid, "Hello")
        assert names(after) == ["session", "done"] and answer(after) == "Hi!"
        assert fake.rejected == []
        roles = [m["role"] for m in await transcript(client, sid)]
        assert roles == ["user", "user", "assistant"]


@pytest.mark.parametrize("steps", [3, 15])  # 15 steps: past LangGraph's default recursion limit
async def test_a_model_that_keeps_calling_tools_is_stopped_after_the_step_limit(
    database_dsn: str, steps: int
) -> None:
    script = [Reply(tool_calls=[stock_call(n)]) for n in range(40)]
    fake = FakeOpenAI(*script)
    async with vera(
        database_dsn,
        fake,
        agent_max_model_steps_per_turn=steps,
        agent_max_tool_calls_per_turn=100,
    ) as client:
        sid = str(uuid.uuid4())
        events = await chat(client, sid, "Keep going")
        assert events[-1].event == "error" and events[-1].data["code"] == "turn_limit"
        assert len(fake.received) == steps  # the model was called exactly `steps` times
        # Every tool call that was announced was run and answered.
        assert names(events).count("tool_call") == names(events).count("tool_result") == steps - 1
        fake.script[:] = [Reply(text="Done now.")]
        after = await chat(client, sid, "Stop and answer")
        assert names(after) == ["session", "done"] and answer(after) == "Done now."
        assert fake.rejected == []


async def test_tool_calls_are_counted_over_the_whole_turn(database_dsn: str) -> None:
    fake = FakeOpenAI(
        *[Reply(tool_calls=[stock_call(2 * n), stock_call(2 * n + 1)]) for n in range(5)]
    )
    async with vera(database_dsn, fake, agent_max_tool_calls_per_turn=5) as client:
        events = await chat(client, str(uuid.uuid4()), "Prices")
        assert events[-1].data["code"] == "turn_limit"
        assert names(events).count("tool_result") == 4  # 2 + 2; the next 2 would make 6
        assert fake.rejected == []


async def test_a_huge_message_to_the_offline_model_hits_the_tool_call_limit(
    database_dsn: str,
) -> None:
    tickers = " ".join(f"{a}{b}{c}" for a in "ABCDEFGH" for b in "KLMNPQRS" for c in "TVWXY")
    message = f"What is the price of {tickers}?"  # 320 tickers: 320 tool calls in one reply
    async with api_client(settings_for(database_dsn), FakeModel(), timeout=60) as client:
        sid = str(uuid.uuid4())
        events = await chat(client, sid, message)
        assert names(events) == ["session", "error"]
        assert events[-1].data["code"] == "turn_limit"
        after = await chat(client, sid, "My name is Ana")
        assert after[-1].event == "done" and "Ana" in answer(after)


async def test_a_resumed_turn_keeps_its_step_count(saver) -> None:
    # Step 2 of a turn times out; resuming it gets only the steps the turn has left.
    fake = FakeOpenAI(
        Reply(tool_calls=[stock_call(1)]),
        Reply(text="thinking", stall_after=1),
        Reply(tool_calls=[stock_call(2)]),
        Reply(tool_calls=[stock_call(3)]),
    )
    async with fake.serve() as url:
        settings = load_settings(
            weather_provider="offline",
            stock_provider="offline",
            openai_api_key=KEY,
            openai_base_url=url,
            agent_model=MODEL,
            agent_timeout_seconds=0.5,
            agent_max_model_steps_per_turn=3,
        )
        graph = build_graph(settings, model=build_chat_model(settings), checkpointer=saver)
        config = {"configurable": {"thread_id": str(uuid.uuid4())}}
        with pytest.raises(ModelTimeoutError):
            await graph.ainvoke({"messages": [HumanMessage("Prices")]}, config)
        with pytest.raises(TurnLimitError):
            await graph.ainvoke(None, config)  # resume: steps 2 and 3, then the limit
        assert len(fake.received) == 4
        state = await graph.aget_state(config)
        assert turn_so_far(state.values["messages"]) == (2, 2)
        assert [type(m).__name__ for m in state.values["messages"]] == [
            "HumanMessage",
            "AIMessage",
            "ToolMessage",
            "AIMessage",
            "ToolMessage",
        ]
