"""Studio (`langgraph dev`) and the HTTP API take turns on one thread and keep one history.

One UUID is both the API's `session_id` and the Studio thread id; both servers run on the
same database, with offline tools and the offline model. The turns alternate (API first,
or Studio first), each with its own question, and after every turn:

- the model answered that turn's question (the offline model's exact text, written from
  the offline tool's result), and
- the history is the same everywhere: `conversations.messages` (plain SQL), the API's
  `GET /sessions/{id}/messages` and Studio's `threads.get_state` hold every message once,
  in order, with the same ids.

Regression test for "Memory: one true history", point 2: `langgraph dev` writes channel
versions in LangGraph's 32-digit format while our checkpointer wrote shorter ones; versions
compare as strings, so a Studio run after an API turn saw nothing new and never called the
model.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
import httpx
import pytest
from langchain_core.messages import ToolMessage
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient

from src.agent.offline_model import OfflineChatModel
from src.tools.stocks.client import OfflineStocks
from src.tools.weather.client import OfflineWeather
from tests.api_harness import api_client, chat, settings_for
from tests.studio_harness import LANGGRAPH_DEV_MARKS, langgraph_dev_server

pytestmark = LANGGRAPH_DEV_MARKS

# (question, tool, argument): four distinct questions, each answered through one tool call.
TURNS = [
    ("What's the weather in Montevideo?", "get_weather", "Montevideo"),
    ("What is the price of AAPL?", "get_stock_price", "AAPL"),
    ("What's the weather in Lisbon?", "get_weather", "Lisbon"),
    ("What is the price of MSFT?", "get_stock_price", "MSFT"),
]
STUDIO_ROLES = {"human": "user", "ai": "assistant", "tool": "tool"}


@pytest.fixture(scope="module")
def langgraph_dev(database_dsn: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One `langgraph dev` for the module (it takes seconds to start); yields its URL."""
    log_path = tmp_path_factory.mktemp("langgraph-dev") / "langgraph-dev.log"
    with langgraph_dev_server(database_dsn, log_path) as (url, _):
        yield url


@pytest.fixture
async def api(database_dsn: str) -> AsyncIterator[httpx.AsyncClient]:
    """The API, in process, on the same database (offline tools and model)."""
    async with api_client(settings_for(database_dsn), timeout=30) as client:
        yield client


async def expected_answer(tool: str, argument: str) -> str:
    """The offline model's answer to a one-tool question: its text for the tool's result."""
    if tool == "get_weather":
        result = await OfflineWeather().current(argument)
    else:
        result = await OfflineStocks().quote(argument)
    message = ToolMessage(result.model_dump_json(), tool_call_id="call", name=tool)
    return OfflineChatModel._describe(message)


async def api_turn(api: httpx.AsyncClient, sid: str, question: str) -> str:
    """Ask through `POST /chat`; the streamed answer."""
    events = await chat(api, sid, question)
    assert events[-1].event == "done", f"API turn {question!r} failed: {events[-1]}"
    return "".join(e.data["content"] for e in events if e.event == "token")


async def studio_turn(studio: LangGraphClient, sid: str, question: str) -> str:
    """Ask through a Studio run (`runs.wait`); the last message of the run's state, which
    must come after the question."""
    values = await studio.runs.wait(
        sid, "vera", input={"messages": [{"role": "user", "content": question}]}
    )
    assert isinstance(values, dict) and "__error__" not in values, values
    messages = values["messages"]
    ends = [(m["type"], str(m["content"])[:50]) for m in messages[-3:]]
    asked = [i for i, m in enumerate(messages) if m["type"] == "human" and m["content"] == question]
    assert asked, f"Studio run: {question!r} is not in the thread's state, which ends {ends}"
    assert messages[-1]["type"] == "ai" and asked[-1] < len(messages) - 1, (
        f"Studio run: the model did not answer {question!r}; the state ends {ends}"
    )
    return messages[-1]["content"]


def shape(messages: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """(id, role, content) of transcript messages (`conversations.messages` / API)."""
    return [(m["id"], m["role"], m["content"]) for m in messages]


def studio_shape(messages: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """(id, role, content) of Studio's state messages (LangChain `type`s as roles)."""
    return [(m["id"], STUDIO_ROLES[m["type"]], m["content"]) for m in messages]


def masked(history: list[tuple[str, str, str]]) -> list[tuple[str, str | None]]:
    """(role, content) with tool results reduced to their subject (they hold a timestamp)."""
    out: list[tuple[str, str | None]] = []
    for _, role, content in history:
        if role == "tool":
            data = json.loads(content)
            content = data.get("city") or data.get("ticker")
        out.append((role, content))
    return out


async def assert_one_history(
    database_dsn: str,
    api: httpx.AsyncClient,
    studio: LangGraphClient,
    sid: str,
    expected: list[tuple[str, str | None]],
    after: str,
) -> None:
    """The database, the API and Studio hold exactly `expected`, once each, in order."""
    conn = await asyncpg.connect(database_dsn)
    try:
        stored = await conn.fetchval(
            "SELECT messages::text FROM conversations WHERE session_id = $1", uuid.UUID(sid)
        )
    finally:
        await conn.close()
    database = shape(json.loads(stored or "[]"))
    response = await api.get(f"/sessions/{sid}/messages")
    assert response.status_code == 200, f"after {after}: {response.text}"
    served = shape(response.json()["messages"])
    state = await studio.threads.get_state(sid)
    studio_view = studio_shape(state["values"].get("messages", []))

    assert masked(database) == expected, f"after {after}: conversations.messages"
    assert len({m[0] for m in database}) == len(database), f"after {after}: repeated ids"
    assert served == database, f"after {after}: GET /sessions/{{id}}/messages"
    assert studio_view == database, f"after {after}: Studio threads.get_state"


@pytest.mark.parametrize(
    "order",
    [("api", "studio", "api", "studio"), ("studio", "api", "studio", "api")],
    ids=["api-first", "studio-first"],
)
async def test_api_and_studio_take_turns_on_one_thread(
    order: tuple[str, ...], langgraph_dev: str, api: httpx.AsyncClient, database_dsn: str
) -> None:
    studio = get_client(url=langgraph_dev)
    sid = str(uuid.uuid4())
    # As Studio does: a thread of the `vera` graph (get_state needs the graph id).
    await studio.threads.create(thread_id=sid, metadata={"graph_id": "vera"}, if_exists="raise")

    expected: list[tuple[str, str | None]] = []
    for number, (side, (question, tool, argument)) in enumerate(zip(order, TURNS, strict=True), 1):
        step = f"turn {number} ({side}: {question!r})"
        if side == "api":
            answer = await api_turn(api, sid, question)
        else:
            answer = await studio_turn(studio, sid, question)
        assert answer == await expected_answer(tool, argument), step
        expected += [
            ("user", question),
            ("assistant", ""),
            ("tool", argument),
            ("assistant", answer),
        ]
        await assert_one_history(database_dsn, api, studio, sid, expected, step)
