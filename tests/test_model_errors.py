"""Provider failures of a real OpenAI client (faked HTTP) become the API's stable errors."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest
from langchain_core.messages import HumanMessage
from langchain_openai import ChatOpenAI

from src.agent.errors import ModelTimeoutError, ModelUnavailableError
from src.agent.graph import build_graph
from src.config.settings import load_settings
from tests.fakes import FakeModel

SETTINGS = load_settings(weather_provider="offline", stock_provider="offline")


def openai_answering(handler) -> ChatOpenAI:
    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return ChatOpenAI(model="gpt-test", api_key="sk-test", http_async_client=client, max_retries=0)


def status(code: int):
    return lambda request: httpx.Response(code, json={"error": {"message": "nope"}})


def read_timeout(request: httpx.Request) -> httpx.Response:
    raise httpx.ReadTimeout("slow", request=request)


def refused(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("refused", request=request)


@pytest.mark.parametrize(
    ("handler", "expected"),
    [
        (status(429), ModelUnavailableError),
        (status(500), ModelUnavailableError),
        (status(503), ModelUnavailableError),
        (refused, ModelUnavailableError),
        (read_timeout, ModelTimeoutError),
    ],
)
async def test_provider_failures_are_classified(handler, expected) -> None:
    graph = build_graph(SETTINGS, model=openai_answering(handler))
    with pytest.raises(expected):
        await graph.ainvoke({"messages": [HumanMessage("hi")]})


async def test_client_errors_stay_bugs() -> None:
    graph = build_graph(SETTINGS, model=openai_answering(status(400)))
    with pytest.raises(Exception) as raised:
        await graph.ainvoke({"messages": [HumanMessage("hi")]})
    assert not isinstance(raised.value, ModelTimeoutError | ModelUnavailableError)


async def test_slow_model_times_out_after_the_setting(saver) -> None:
    settings = load_settings(
        weather_provider="offline", stock_provider="offline", agent_timeout_seconds=0.2
    )
    graph = build_graph(settings, model=FakeModel(gate=asyncio.Event()), checkpointer=saver)
    config = {"configurable": {"thread_id": str(uuid.uuid4())}}
    with pytest.raises(ModelTimeoutError, match=r"0\.2 s"):
        await graph.ainvoke({"messages": [HumanMessage("hi")]}, config)
    state = await graph.aget_state(config)
    assert state.next == ("model",)  # the message is kept; the model step can be retried
    assert [m.content for m in state.values["messages"]] == ["hi"]
