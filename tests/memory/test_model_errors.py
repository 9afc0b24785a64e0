"""Provider failures of a real OpenAI client (faked HTTP) become the API's stable errors."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest
from langchain_core.messages import HumanMessage
from langchain_openai import ChatOpenAI

from src.agent.errors import (
    ModelHealth,
    ModelRejectedError,
    ModelTimeoutError,
    ModelUnavailableError,
)
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
        (status(408), ModelTimeoutError),
        (status(400), ModelRejectedError),
        (status(401), ModelRejectedError),
        (status(403), ModelRejectedError),
        (status(404), ModelRejectedError),
        (status(422), ModelRejectedError),
    ],
)
async def test_provider_failures_are_classified(handler, expected) -> None:
    graph = build_graph(SETTINGS, model=openai_answering(handler))
    with pytest.raises(expected):
        await graph.ainvoke({"messages": [HumanMessage("hi")]})


async def test_a_rejection_names_the_status_and_code_but_not_the_providers_text() -> None:
    def bad_key(request: httpx.Request) -> httpx.Response:
        message = "Incorrect API key provided: sk-test. You can find your API key at ..."
        return httpx.Response(401, json={"error": {"message": message, "code": "invalid_api_key"}})

    health = ModelHealth()
    graph = build_graph(SETTINGS, model=openai_answering(bad_key), model_health=health)
    with pytest.raises(ModelRejectedError) as raised:
        await graph.ainvoke({"messages": [HumanMessage("hi")]})
    assert (raised.value.status, raised.value.provider_code) == (401, "invalid_api_key")
    assert "sk-test" not in str(raised.value)
    assert health.status == "rejected" and "401" in (health.error or "")


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
