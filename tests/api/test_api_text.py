"""Text the JSON can't carry: lone surrogates and invisible messages are refused at the
door (422 naming the field), and any text already stored (from Studio, a tool, an older
row) is still answered as valid JSON, never a 500."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest
from langchain_core.messages import HumanMessage

from src.api.app import create_app
from tests.api_harness import serve, settings_for
from tests.fakes import FakeModel


@pytest.fixture
async def served(database_dsn: str):
    app = create_app(settings_for(database_dsn), model=FakeModel())
    async with serve(app) as url, httpx.AsyncClient(base_url=url) as client:
        yield app, client


def body(message: str) -> dict:
    return {"session_id": str(uuid.uuid4()), "message": message}


@pytest.mark.parametrize(
    "message",
    ["x\ud800y", "\udfff", "\u200b\u200b", " \u2060\ufeff \t", "\u200d\n\u200c"],
    ids=[
        "lone high surrogate",
        "lone low surrogate",
        "zero-width only",
        "word joiner and BOM",
        "joiners and newline",
    ],
)
async def test_unrepresentable_or_invisible_messages_get_422(served, message: str) -> None:
    _, client = served
    for path in ("/chat", "/chat/complete"):
        # ASCII-escaped JSON: a lone surrogate travels as a `\\udXXX` escape, as clients send it.
        response = await client.post(
            path, content=json.dumps(body(message)), headers={"Content-Type": "application/json"}
        )
        assert response.status_code == 422, response.text
        assert response.json()["details"][0]["field"] == "message"


async def test_raw_surrogate_bytes_in_the_body_get_422(served) -> None:
    _, client = served
    raw = b'{"session_id": "%s", "message": "x\xed\xa0\x80y"}' % str(uuid.uuid4()).encode()
    response = await client.post(
        "/chat/complete", content=raw, headers={"Content-Type": "application/json"}
    )
    assert response.status_code in (400, 422), response.text
    assert response.json()["code"] == "invalid_request"


async def test_stored_lone_surrogates_are_still_answered_as_json(served) -> None:
    app, client = served
    sid = str(uuid.uuid4())
    graph = app.state.runner.graph
    config = {"configurable": {"thread_id": sid}}
    # As Studio or an older version could have stored it.
    await graph.aupdate_state(config, {"messages": [HumanMessage("odd \ud800 text", id="h1")]})
    response = await client.get(f"/sessions/{sid}/messages")
    assert response.status_code == 200, response.text
    assert json.loads(response.text)["messages"][0]["content"] == "odd \ud800 text"
    answer = await client.post("/chat/complete", json={"session_id": sid, "message": "hello"})
    assert answer.status_code == 200, answer.text


async def test_head_health_answers_without_a_body(served) -> None:
    _, client = served
    response = await client.head("/health")
    assert response.status_code == 200 and response.content == b""
