"""The HTTP API's happy paths: a streamed tool turn, /chat/complete, history, delete, docs."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest

from src.api.app import create_app
from tests.api_harness import chat, serve, settings_for
from tests.fakes import FakeModel


@pytest.fixture
async def client(database_dsn: str) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings_for(database_dsn), model=FakeModel())
    async with serve(app) as url, httpx.AsyncClient(base_url=url, timeout=30) as http:
        yield http


async def rows(dsn: str, query: str, *args: object) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetch(query, *args)
    finally:
        await conn.close()


async def test_tool_turn_streams_every_event_in_order(pooled_client: httpx.AsyncClient) -> None:
    sid = str(uuid.uuid4())
    events = await chat(
        pooled_client, sid, "What's the weather in Montevideo and the price of AAPL?"
    )
    names = [e.event for e in events]
    assert names[0] == "session" and names[-1] == "done"
    turn_id = events[0].data["turn_id"]
    assert [e.id for e in events] == [f"{turn_id}:{i}" for i in range(1, len(events) + 1)]
    assert events[0].data["session_id"] == sid
    uuid.UUID(events[0].data["run_id"])
    calls = [e.data for e in events if e.event == "tool_call"]
    results = [e.data for e in events if e.event == "tool_result"]
    assert {c["tool"] for c in calls} == {"get_weather", "get_stock_price"}
    assert {r["id"] for r in results} == {c["id"] for c in calls}
    assert all(r["status"] == "ok" for r in results)
    weather = next(r["result"] for r in results if r["tool"] == "get_weather")
    assert weather["city"] == "Montevideo"
    # Tool calls come before their results, and tokens after the results (the final answer).
    assert max(names.index("tool_call"), 0) < names.index("tool_result")
    tokens = [e.data["content"] for e in events if e.event == "token"]
    assert len(tokens) > 3 and names.index("token") > names.index("tool_result")
    answer = "".join(tokens)
    assert str(weather["temperature_c"]) in answer
    done = events[-1].data
    assert done["usage"]["total_tokens"] > 0
    transcript = (await pooled_client.get(f"/sessions/{sid}/messages")).json()["messages"]
    assert transcript[-1]["content"] == answer
    assert transcript[-1]["id"] == done["message_id"]
    assert [m["role"] for m in transcript] == ["user", "assistant", "tool", "tool", "assistant"]


async def test_chat_complete_returns_answer_tool_calls_and_usage(
    client: httpx.AsyncClient,
) -> None:
    sid = str(uuid.uuid4())
    response = await client.post(
        "/chat/complete", json={"session_id": sid, "message": "What is the price of MSFT?"}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["session_id"] == sid
    [call] = body["tool_calls"]
    assert call["tool"] == "get_stock_price" and call["args"] == {"ticker": "MSFT"}
    assert call["status"] == "ok" and call["result"]["ticker"] == "MSFT"
    assert str(call["result"]["price"]) in body["response"]
    assert body["usage"]["input_tokens"] > 0 and body["usage"]["output_tokens"] > 0
    # The same session remembers: a second turn sees the first.
    await client.post("/chat/complete", json={"session_id": sid, "message": "My name is Ana"})
    again = await client.post(
        "/chat/complete", json={"session_id": sid, "message": "What is my name?"}
    )
    assert "Ana" in again.json()["response"]


async def test_history_and_delete_remove_every_row(
    client: httpx.AsyncClient, database_dsn: str
) -> None:
    sid = str(uuid.uuid4())
    await chat(client, sid, "What is the weather in Paris?")
    history = await client.get(f"/sessions/{sid}/messages")
    assert history.status_code == 200
    assert history.json()["messages"][0] == {
        **history.json()["messages"][0],
        "role": "user",
        "content": "What is the weather in Paris?",
    }
    tables = [
        "conversations",
        "checkpoints",
        "checkpoint_blobs",
        "checkpoint_writes",
        "transcript_heads",
        "turn_events",
    ]
    counts = [
        (
            await rows(
                database_dsn, f"SELECT count(*) FROM {t} WHERE session_id = $1", uuid.UUID(sid)
            )
        )[0][0]
        for t in tables
    ]
    assert all(n > 0 for n in counts), counts
    deleted = await client.delete(f"/sessions/{sid}")
    assert deleted.status_code == 204 and deleted.content == b""
    for table in [*tables, "turn_leases"]:
        [row] = await rows(
            database_dsn, f"SELECT count(*) FROM {table} WHERE session_id = $1", uuid.UUID(sid)
        )
        assert row[0] == 0, table
    assert (await client.get(f"/sessions/{sid}/messages")).status_code == 404
    gone = await client.delete(f"/sessions/{sid}")
    assert gone.status_code == 404 and gone.json()["code"] == "not_found"


async def test_unusual_text_is_stored_and_returned_exactly(client: httpx.AsyncClient) -> None:
    sid = str(uuid.uuid4())
    text = "NUL\u0000 emoji 🧾💶 RTL مرحبا بالعالم 'quote'; DROP TABLE conversations; --"
    events = await chat(client, sid, text)
    assert events[-1].event == "done"
    [first, *_] = (await client.get(f"/sessions/{sid}/messages")).json()["messages"]
    assert first["content"] == text


async def test_health_docs_and_security_headers(client: httpx.AsyncClient) -> None:
    health = await client.get("/health")
    assert health.status_code == 200
    assert health.json()["database"] == "reachable" and "offline" in health.json()["model"]
    assert health.headers["x-content-type-options"] == "nosniff"
    assert health.headers["x-frame-options"] == "DENY"
    assert "default-src 'none'" in health.headers["content-security-policy"]
    spec = (await client.get("/openapi.json")).json()
    stream = spec["paths"]["/chat"]["post"]["responses"]["200"]["content"]["text/event-stream"]
    titles = set(stream["schema"]["properties"]["event"]["enum"])
    assert titles == {
        "session",
        "token",
        "tool_call",
        "tool_result",
        "interrupt",
        "error",
        "done",
        "cancelled",
    }
    for name in titles - {"error", "interrupt", "cancelled"}:  # the example is a turn that succeeds
        assert f"event: {name}\n" in stream["example"]
    assert "`error`" in spec["paths"]["/chat"]["post"]["description"]
    assert "`cancelled`" in spec["paths"]["/chat"]["post"]["description"]
    cancel = spec["paths"]["/sessions/{session_id}/turns/{turn_id}/cancel"]["post"]
    assert {"200", "202", "404"} <= set(cancel["responses"])
    assert (await client.get("/docs")).status_code == 200
