"""The Agent Server door's runs, what a run's body asks (issue 26, second half): fields
checked whole (422 naming the field, nothing stored), `if_not_exists`, a fork from a
checkpoint, `interrupt_before` and `Command(resume=...)`, the error event of a failed run."""

from __future__ import annotations

import uuid

import asyncpg
import httpx
import pytest
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient
from langgraph_sdk.errors import NotFoundError, UnprocessableEntityError

from src.api.app import create_app
from tests.agent_server_runs import KEY, OTHER, QUESTION, runs_of, transcript, user
from tests.api_harness import serve, settings_for
from tests.fakes import FakeModel


async def test_bad_or_unserved_fields_are_422_naming_them_and_store_nothing(
    sdk: LangGraphClient, http: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    tid = (await sdk.threads.create())["thread_id"]
    ok = {"assistant_id": "vera", "input": user("Hi")}
    refused = {
        "webhook": {**ok, "webhook": "http://example.invalid/hook"},
        "on_completion": {**ok, "on_completion": "keep"},
        "after_seconds": {**ok, "after_seconds": 5},
        "feedback_keys": {**ok, "feedback_keys": ["x"]},
        "multitask_strategy": {**ok, "multitask_strategy": "nonsense"},
        "stream_mode": {**ok, "stream_mode": ["values", "nonsense"]},
        "assistant_id": {**ok, "assistant_id": "not-a-graph"},
        "config": {**ok, "config": {"configurable": 3}},
        # langgraph dev 422s these too (Vera stored a failed run with a TypeError before).
        "recursion_limit": {**ok, "config": {"recursion_limit": "x"}},
        "tags": {**ok, "config": {"tags": "x"}},
        "surprise": {**ok, "surprise": True},
    }
    for field, body in refused.items():
        for route in ("runs", "runs/stream", "runs/wait"):
            answer = await http.post(f"/threads/{tid}/{route}", json=body)
            assert answer.status_code == 422, (field, route, answer.text)
            assert field in answer.text, (field, answer.text)
    with pytest.raises(UnprocessableEntityError):
        await sdk.runs.create(tid, "vera", input=user("Hi"), webhook="http://example.invalid/x")
    unknown = await http.post(
        f"/threads/{tid}/runs", json={**ok, "assistant_id": str(uuid.uuid4())}
    )
    assert unknown.status_code == 404
    assert await runs_of(db, tid) == 0
    assert (await sdk.threads.get_state(tid))["values"] == {}
    assert (await http.get(f"/threads/{tid}/runs")).json() == []


async def test_if_not_exists_creates_the_thread_for_the_caller_or_refuses(
    sdk: LangGraphClient, server: str
) -> None:
    fresh = str(uuid.uuid4())
    with pytest.raises(httpx.HTTPStatusError) as refused:  # wait's error is httpx's
        await sdk.runs.wait(fresh, "vera", input=user("Hi"), if_not_exists="reject")
    assert refused.value.response.status_code == 404
    values = await sdk.runs.wait(fresh, "vera", input=user("Hi"), if_not_exists="create")
    assert [m["type"] for m in values["messages"]] == ["human", "ai"]
    assert (await sdk.threads.get(fresh))["thread_id"] == fresh
    async with httpx.AsyncClient(base_url=server, headers={"X-API-Key": OTHER}) as other:
        assert (await other.get(f"/threads/{fresh}")).status_code == 404


async def test_a_run_from_a_checkpoint_forks_the_thread(sdk: LangGraphClient) -> None:
    tid = (await sdk.threads.create())["thread_id"]
    await sdk.runs.wait(tid, "vera", input=user("Hello"))
    after_first = (await sdk.threads.get_state(tid))["checkpoint"]["checkpoint_id"]
    await sdk.runs.wait(tid, "vera", input=user("Thanks"))
    assert len((await sdk.threads.get_state(tid))["values"]["messages"]) == 4
    forked = await sdk.runs.wait(tid, "vera", input=user("Bye"), checkpoint_id=after_first)
    texts = [m["content"] for m in forked["messages"] if m["type"] == "human"]
    assert texts == ["Hello", "Bye"]  # from the first turn's checkpoint, not the second's
    state = await sdk.threads.get_state(tid)
    assert [m["content"] for m in state["values"]["messages"] if m["type"] == "human"] == texts
    with pytest.raises(NotFoundError):
        await sdk.runs.create(tid, "vera", input=user("x"), checkpoint_id=str(uuid.uuid4()))


async def test_interrupt_before_pauses_the_run_and_a_command_resumes_it(
    sdk: LangGraphClient, db: asyncpg.Connection
) -> None:
    tid = (await sdk.threads.create())["thread_id"]
    paused = [
        p
        async for p in sdk.runs.stream(
            tid, "vera", input=user(QUESTION), interrupt_before=["tools"], stream_mode="updates"
        )
    ]
    run_id = paused[0].data["run_id"]
    assert (await sdk.runs.get(tid, run_id))["status"] == "interrupted"
    thread = await sdk.threads.get(tid)
    assert thread["status"] == "interrupted"
    assert (await sdk.threads.get_state(tid))["next"] == ["tools"]
    assert "__interrupt__" in paused[-1].data
    resumed = await sdk.runs.wait(tid, "vera", command={"resume": True})
    assert [m["type"] for m in resumed["messages"]] == ["human", "ai", "tool", "tool", "ai"]
    assert (await sdk.threads.get(tid))["status"] == "idle"
    runs = await sdk.runs.list(tid)
    assert [r["status"] for r in runs] == ["success", "interrupted"]
    assert runs[0]["kwargs"]["command"] == {"resume": True}
    assert [t for t, _ in await transcript(db, tid)] == ["human", "ai", "tool", "tool", "ai"]


async def test_an_approval_interrupt_is_answered_with_command_resume(database_dsn: str) -> None:
    settings = settings_for(database_dsn, api_key=KEY, agent_confirm_tools=["get_stock_price"])
    async with serve(create_app(settings, model=FakeModel())) as url:
        sdk = get_client(url=url, api_key=KEY)
        tid = (await sdk.threads.create())["thread_id"]
        waiting = await sdk.runs.wait(tid, "vera", input=user(QUESTION))
        [pending] = waiting["__interrupt__"]
        assert pending["value"]["tool_calls"][0]["tool"] == "get_stock_price"
        assert (await sdk.threads.get(tid))["status"] == "interrupted"
        assert (await sdk.runs.list(tid))[0]["status"] == "interrupted"
        done = await sdk.runs.wait(tid, "vera", command={"resume": {"approved": True}})
        assert "AAPL is at" in done["messages"][-1]["content"]
        assert (await sdk.runs.list(tid))[0]["status"] == "success"
        await sdk.http.client.aclose()


async def test_a_failed_run_ends_with_langgraph_apis_error_event(database_dsn: str) -> None:
    settings = settings_for(database_dsn, api_key=KEY)
    model = FakeModel(error=ValueError("the model broke"))
    async with serve(create_app(settings, model=model)) as url:
        sdk = get_client(url=url, api_key=KEY)
        tid = (await sdk.threads.create())["thread_id"]
        parts = [p async for p in sdk.runs.stream(tid, "vera", input=user("Hi"))]
        assert parts[-1].event == "error"
        assert set(parts[-1].data) == {"error", "message"}
        run = await sdk.runs.get(tid, parts[0].data["run_id"])
        assert run["status"] == "error"
        await sdk.http.client.aclose()
