"""SDK runs and `/chat` turns take turns on one thread across two workers (issue 26): two
`python -m src.api` processes on one database, the real `ChatOpenAI` against a scripted
OpenAI-protocol server. Every message is stored once, in order; a run sent while a
`/chat` turn holds the thread is refused with a clean 409 and stores nothing."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient

from tests.fake_openai import FakeOpenAI, Reply, chat_openai_environment
from tests.processes import stored, workers

KEY = "sdk-workers-key-0123456789abcdefghijk"


@contextlib.asynccontextmanager
async def services(
    database_dsn: str, tmp_path: Path
) -> AsyncIterator[tuple[FakeOpenAI, list[str]]]:
    """The scripted model, and two workers using it through the real `ChatOpenAI`."""
    model = FakeOpenAI()
    async with model.serve() as url:
        env = {**chat_openai_environment(url), "API_KEY": KEY, "RATE_LIMIT_PER_MINUTE": "10000"}
        logs = [tmp_path / "a.log", tmp_path / "b.log"]
        with workers(database_dsn, logs, **env) as pair:
            yield model, [worker.url for worker in pair]


def sdk(url: str) -> LangGraphClient:
    return get_client(url=url, api_key=KEY)


async def chat(url: str, tid: str, text: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=url, headers={"X-API-Key": KEY}, timeout=60) as http:
        return await http.post("/chat/complete", json={"session_id": tid, "message": text})


async def test_sdk_runs_and_chat_turns_alternate_on_one_thread_across_two_workers(
    database_dsn: str, tmp_path: Path
) -> None:
    async with services(database_dsn, tmp_path) as (model, urls):
        await alternate(model, urls)


async def alternate(model: FakeOpenAI, workers: list[str]) -> None:
    first, second = sdk(workers[0]), sdk(workers[1])
    tid = (await first.threads.create())["thread_id"]
    expected: list[tuple[str, str]] = []
    for turn in range(6):
        model.add(Reply(text=f"answer {turn}"))
        if turn % 2 == 0:
            client = first if turn % 4 == 0 else second
            values = await client.runs.wait(
                tid, "vera", input={"messages": [{"role": "user", "content": f"sdk {turn}"}]}
            )
            assert values["messages"][-1]["content"] == f"answer {turn}"
            expected += [("user", f"sdk {turn}"), ("assistant", f"answer {turn}")]
        else:
            response = await chat(workers[turn % 4 == 1], tid, f"chat {turn}")
            assert response.status_code == 200, response.text
            expected += [("user", f"chat {turn}"), ("assistant", f"answer {turn}")]
    assert await stored(workers[0], KEY, tid) == expected
    state = await second.threads.get_state(tid)
    ids = [m["id"] for m in state["values"]["messages"]]
    assert len(ids) == len(set(ids)) == len(expected)
    runs = await first.runs.list(tid)
    assert len(runs) == 3 and {r["status"] for r in runs} == {"success"}
    for client in (first, second):
        await client.http.client.aclose()


async def test_a_run_on_a_busy_thread_is_a_clean_409_and_stores_nothing(
    database_dsn: str, tmp_path: Path
) -> None:
    async with services(database_dsn, tmp_path) as (model, urls):
        await refuse_while_busy(model, urls)


async def refuse_while_busy(model: FakeOpenAI, workers: list[str]) -> None:
    client = sdk(workers[1])
    tid = (await client.threads.create())["thread_id"]
    entered, release = asyncio.Event(), asyncio.Event()

    async def hold() -> None:
        entered.set()
        await release.wait()

    model.gate = hold
    model.add(Reply(text="the slow answer"))
    turn = asyncio.create_task(chat(workers[0], tid, "a slow question"))
    # Until the model is asked, the /chat turn holds the thread's lease on worker A.
    asked = asyncio.create_task(entered.wait())
    await asyncio.wait([asked, turn], return_when=asyncio.FIRST_COMPLETED)
    assert not turn.done(), turn.result().text
    try:
        refused = {"messages": [{"role": "user", "content": "refused"}]}
        for call in (
            lambda: client.runs.wait(tid, "vera", input=refused, multitask_strategy="reject"),
            lambda: client.runs.create(tid, "vera", input=refused, multitask_strategy="reject"),
        ):
            # runs.wait raises httpx's error, runs.create the SDK's ConflictError (a subclass).
            with pytest.raises(httpx.HTTPStatusError) as caught:
                await call()
            assert caught.value.response.status_code == 409
            body = caught.value.response.json()
            assert body["code"] == "session_busy" and body["message"], body
    finally:  # the /chat turn goes on, whatever the checks found
        model.gate = None
        release.set()
    assert (await turn).status_code == 200
    assert await stored(workers[1], KEY, tid) == [
        ("user", "a slow question"),
        ("assistant", "the slow answer"),
    ]
    assert await client.runs.list(tid) == []
    await client.http.client.aclose()
