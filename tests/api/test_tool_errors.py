"""A failing tool as the user sees it: a short human message, a WARNING, and a counted
failure on the turn's log line (faked HTTP: the tests never reach the network)."""

from __future__ import annotations

import logging
import uuid

import httpx
import pytest
from langchain_core.messages import HumanMessage, ToolMessage
from langchain_core.tools import StructuredTool

from src.agent.graph import build_graph
from src.agent.tools import build_tools
from src.api.app import create_app
from src.config.settings import load_settings
from tests.api_harness import chat, serve, settings_for
from tests.fakes import FakeModel

UNREACHABLE = "The weather service is unreachable right now; try again later."
LEAKS = ("ToolError", "Please fix your mistakes", "Traceback", "Error(", "open-meteo.com")


def offline_client() -> httpx.AsyncClient:
    """An HTTP client whose every request fails as with no internet."""

    def no_network(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno -3] Temporary failure in name resolution", request=request)

    return httpx.AsyncClient(transport=httpx.MockTransport(no_network), timeout=1)


async def test_unreachable_weather_service_is_short_logged_and_counted(
    database_dsn: str, caplog: pytest.LogCaptureFixture
) -> None:
    settings = settings_for(database_dsn, weather_provider="open-meteo", tool_max_attempts=1)
    tools = build_tools(settings, client=offline_client())
    caplog.set_level(logging.INFO)
    app = create_app(settings, model=FakeModel(), tools=tools)
    async with serve(app) as url, httpx.AsyncClient(base_url=url) as client:
        events = await chat(client, str(uuid.uuid4()), "What's the weather in Montevideo?")
    [result] = [e.data for e in events if e.event == "tool_result"]
    assert result["status"] == "error"
    assert result["result"] == UNREACHABLE
    answer = "".join(e.data["content"] for e in events if e.event == "token")
    for leak in LEAKS:
        assert leak not in answer and leak not in str(result)
    assert events[-1].event == "done"

    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and "tool" in r.name]
    [warning] = [r.getMessage() for r in warnings]
    assert "tool=get_weather" in warning and "error=" in warning
    assert "Montevideo" not in warning  # no user text in the logs
    [turn_line] = [r.getMessage() for r in caplog.records if r.name == "vera.turns"]
    assert "status=ok" in turn_line and "tool_errors=1" in turn_line


async def test_turn_line_counts_no_tool_errors_when_tools_work(
    database_dsn: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    settings = settings_for(database_dsn)
    app = create_app(settings, model=FakeModel())
    async with serve(app) as url, httpx.AsyncClient(base_url=url) as client:
        await chat(client, str(uuid.uuid4()), "What's the weather in Montevideo?")
    [turn_line] = [r.getMessage() for r in caplog.records if r.name == "vera.turns"]
    assert "tool_errors=0" in turn_line


def failing_weather_tool(error: Exception) -> StructuredTool:
    async def get_weather(city: str) -> str:
        raise error

    return StructuredTool.from_function(
        coroutine=get_weather, name="get_weather", description="Current weather in a city."
    )


async def tool_message(tools: list, text: str) -> ToolMessage:
    settings = load_settings(weather_provider="offline", stock_provider="offline")
    graph = build_graph(settings, model=FakeModel(), tools=tools)
    state = await graph.ainvoke({"messages": [HumanMessage(text)]})
    [message] = [m for m in state["messages"] if isinstance(m, ToolMessage)]
    return message


async def test_unexpected_tool_bug_never_leaks_its_detail(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    tool = failing_weather_tool(KeyError("secret-internal-detail"))
    message = await tool_message([tool], "What's the weather in Montevideo?")
    assert message.status == "error"
    assert "secret-internal-detail" not in str(message.content)
    assert "KeyError" not in str(message.content)
    assert str(message.content) == "The get_weather tool failed unexpectedly; try again later."
    assert any("tool=get_weather error=KeyError" in r.getMessage() for r in caplog.records)


async def test_invalid_arguments_are_explained_without_a_repr() -> None:
    settings = load_settings(weather_provider="offline", stock_provider="offline")
    message = await tool_message(build_tools(settings), "What's the weather in <script>?")
    assert message.status == "error"
    text = str(message.content)
    assert text.startswith("The get_weather tool was called with invalid arguments:")
    assert "does not look like a city name" in text
    for leak in (*LEAKS, "ValidationError", "pydantic.dev"):
        assert leak not in text


@pytest.mark.parametrize(
    ("status", "text"),
    [
        (429, "The stock price service is not available right now; try again later."),
        (401, "The stock price service is not available right now; try again later."),
        (503, "The stock price service is not working right now; try again later."),
    ],
)
async def test_http_failures_have_human_user_messages(status: int, text: str) -> None:
    from pydantic import SecretStr

    from src.tools.http import ToolError
    from src.tools.stocks.client import FinnhubStocks

    client = httpx.AsyncClient(transport=httpx.MockTransport(lambda r: httpx.Response(status)))
    with pytest.raises(ToolError) as caught:
        await FinnhubStocks(client, SecretStr("k"), attempts=1).quote("AAPL")
    assert caught.value.user_message == text
