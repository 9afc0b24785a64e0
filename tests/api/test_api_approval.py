"""Approve before acting (issue 25, point 3), in one process on the offline model: a turn
calling a tool of `AGENT_CONFIRM_TOOLS` ends with `interrupt`; `POST .../resume` approves
or denies it; a new message meanwhile is 409 `approval_pending`; a resume with nothing
waiting is 409 `nothing_to_resume`; the turn's status says `needs_approval`."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.api_harness import Event, api_client, chat, parse_sse, samples, settings_for, value

QUESTION = "What is the weather in Paris and the price of MSFT?"


@pytest.fixture
async def client(database_dsn: str) -> AsyncIterator[httpx.AsyncClient]:
    settings = settings_for(database_dsn, agent_confirm_tools=["get_stock_price"])
    async with api_client(settings, timeout=30) as http:
        yield http


async def resume(
    client: httpx.AsyncClient, sid: str, turn_id: str, approved: Any
) -> httpx.Response:
    return await client.post(f"/sessions/{sid}/turns/{turn_id}/resume", json={"approved": approved})


def events_of(response: httpx.Response) -> list[Event]:
    assert response.status_code == 200, response.text
    return parse_sse(response.text)[0]


async def paused(client: httpx.AsyncClient) -> tuple[str, str, Event]:
    """A new session whose first turn waits for approval: (session, turn_id, interrupt)."""
    sid = str(uuid.uuid4())
    events = await chat(client, sid, QUESTION)
    assert [e.event for e in events] == ["session", "tool_call", "tool_call", "interrupt"]
    return sid, events[0].data["turn_id"], events[-1]


async def test_a_confirmed_tool_waits_and_runs_once_approved(client: httpx.AsyncClient) -> None:
    sid, turn_id, interrupt = await paused(client)
    asked = interrupt.data["value"]
    assert asked["kind"] == "tool_approval"
    assert [(c["tool"], c["args"]) for c in asked["tool_calls"]] == [
        ("get_stock_price", {"ticker": "MSFT"})
    ]
    status = (await client.get(f"/sessions/{sid}/turns/{turn_id}")).json()
    assert status["status"] == "needs_approval"
    assert status["interrupt"] == interrupt.data
    # Nothing ran yet: the weather call waits with the stock call (one step of tools).
    messages = (await client.get(f"/sessions/{sid}/messages")).json()["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant"]

    events = events_of(await resume(client, sid, turn_id, True))
    names = [e.event for e in events if e.event != "token"]
    assert names == ["session", "tool_result", "tool_result", "done"]
    assert events[0].data == {**events[0].data, "turn_id": turn_id, "resumed": True}
    assert {e.data["tool"]: e.data["status"] for e in events if e.event == "tool_result"} == {
        "get_weather": "ok",
        "get_stock_price": "ok",
    }
    assert events[0].id == f"{turn_id}:5"  # numbered on from the paused stream
    assert (await client.get(f"/sessions/{sid}/turns/{turn_id}")).json()["status"] == "done"

    # The same resume again: the stored turn, nothing runs.
    again = events_of(await resume(client, sid, turn_id, True))
    assert [e.event for e in again if e.event != "token"][-1] == "done"
    after = (await client.get(f"/sessions/{sid}/messages")).json()["messages"]
    assert [m["role"] for m in after] == ["user", "assistant", "tool", "tool", "assistant"]
    scrape = samples((await client.get("/metrics")).text)
    assert value(scrape, "vera_tool_calls_total", tool="get_stock_price", status="ok") >= 1


async def test_a_denied_call_is_not_run_and_the_model_is_told(client: httpx.AsyncClient) -> None:
    sid, turn_id, _ = await paused(client)
    events = events_of(await resume(client, sid, turn_id, False))
    results = {e.data["tool"]: e.data for e in events if e.event == "tool_result"}
    assert results["get_stock_price"]["status"] == "declined"
    assert "declined" in results["get_stock_price"]["result"]
    assert results["get_weather"]["status"] == "ok"
    assert events[-1].event == "done"
    messages = (await client.get(f"/sessions/{sid}/messages")).json()["messages"]
    tool = [m for m in messages if m["role"] == "tool" and m["name"] == "get_stock_price"]
    assert len(tool) == 1 and "declined" in tool[0]["content"]
    # The conversation goes on.
    assert (await chat(client, sid, "Thanks"))[-1].event == "done"
    scrape = samples((await client.get("/metrics")).text)
    assert value(scrape, "vera_tool_calls_total", tool="get_stock_price", status="declined") >= 1
    assert value(scrape, "vera_resumes_total", decision="declined") >= 1


async def test_chat_complete_answers_a_paused_turn_with_its_interrupt(
    client: httpx.AsyncClient,
) -> None:
    sid = str(uuid.uuid4())
    body = await client.post("/chat/complete", json={"session_id": sid, "message": QUESTION})
    assert body.status_code == 200, body.text
    paused = body.json()
    assert paused["message_id"] is None
    assert paused["interrupt"]["value"]["tool_calls"][0]["tool"] == "get_stock_price"
    assert [c["status"] for c in paused["tool_calls"]] == [None, None]  # nothing ran
    events = events_of(await resume(client, sid, paused["turn_id"], True))
    assert events[-1].event == "done"


async def test_a_new_message_while_waiting_is_refused(client: httpx.AsyncClient) -> None:
    sid, turn_id, _ = await paused(client)
    refused = await client.post("/chat", json={"session_id": sid, "message": "Never mind"})
    assert refused.status_code == 409, refused.text
    assert refused.json()["code"] == "approval_pending"
    assert turn_id in refused.json()["message"] and "get_stock_price" in refused.json()["message"]
    assert refused.json()["details"] == [{"turn_id": turn_id}]
    # Sending the paused turn's message again asks again (nothing runs).
    again = await client.post(
        "/chat", json={"session_id": sid, "message": QUESTION, "turn_id": turn_id}
    )
    assert [e.event for e in events_of(again)][-1] == "interrupt"


async def test_a_resume_with_nothing_waiting_is_refused(client: httpx.AsyncClient) -> None:
    sid = str(uuid.uuid4())
    done = await chat(client, sid, "Hello")
    answered = await resume(client, sid, done[0].data["turn_id"], True)
    assert answered.status_code == 409 and answered.json()["code"] == "nothing_to_resume"
    unknown = await resume(client, sid, "no-such-turn", True)
    assert unknown.status_code == 409 and unknown.json()["code"] == "nothing_to_resume"

    sid, turn_id, interrupt = await paused(client)
    wrong = await resume(client, sid, turn_id, ["call_nope"])
    assert wrong.status_code == 422 and "call_nope" in wrong.json()["message"]
    bad = await client.post(f"/sessions/{sid}/turns/{turn_id}/resume", json={"approved": "yes"})
    assert bad.status_code == 422 and bad.json()["code"] == "invalid_request"
    chosen = interrupt.data["value"]["tool_calls"][0]["id"]
    events = events_of(await resume(client, sid, turn_id, [chosen]))
    assert [e.data["status"] for e in events if e.event == "tool_result"].count("ok") == 2


async def test_the_openapi_document_describes_the_resume(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    operation = spec["paths"]["/sessions/{session_id}/turns/{turn_id}/resume"]["post"]
    assert "nothing_to_resume" in operation["responses"]["409"]["description"]
    body = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    assert body.endswith("/ResumeRequest")
    schemas = spec["components"]["schemas"]
    assert "needs_approval" in schemas["TurnStatus"]["properties"]["status"]["enum"]
    assert "approval_pending" in schemas["ErrorBody"]["properties"]["code"]["enum"]
    chat = spec["paths"]["/chat"]["post"]
    assert "approval_pending" in chat["responses"]["409"]["description"]
    # Which steps pause is the service's setting: a caller's interrupt_before is refused.
    body = {"session_id": str(uuid.uuid4()), "message": "Hi", "interrupt_before": ["tools"]}
    refused = await client.post("/chat", json=body)
    assert refused.status_code == 422 and "interrupt_before" in refused.text
