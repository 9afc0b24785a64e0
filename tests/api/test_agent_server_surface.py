"""The rest of the Agent Server API the SDK and Studio call (issue 26), driven by
`langgraph_sdk` against the app under uvicorn: `assistants.get_subgraphs`, `runs.delete`,
`runs.cancel_many` (`POST /runs/cancel`) and threadless runs (`runs.stream/wait/create`
with `thread_id=None`: a thread of the caller's made for the run, deleted once it ended
unless `on_completion="keep"`), each on the same turn runner and ownership as a thread's
runs."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient
from langgraph_sdk.errors import NotFoundError

from src.api.agent_server.graphs import assistant_id_of
from src.api.app import create_app
from tests.agent_server_runs import QUESTION, runs_of, user
from tests.api_harness import serve, settings_for, wait_until
from tests.fakes import FakeModel

KEY = "surface-key-0123456789abcdefghijklmno"
OTHER = "surface-other-key-0123456789abcdefgh"
ASSISTANT = str(assistant_id_of("vera"))


@pytest.fixture
def api_key() -> str:
    return KEY


@pytest.fixture
def api_keys() -> str:
    return f"surface-other:{OTHER}"


@pytest.fixture
async def them(server: str) -> AsyncIterator[LangGraphClient]:
    client = get_client(url=server, api_key=OTHER)
    yield client
    await client.http.client.aclose()


def gated() -> FakeModel:
    """A model whose second call waits for its gate (the tools ran, the run runs on)."""
    return FakeModel(gate=asyncio.Event(), started=asyncio.Event(), gate_from_call=2)


async def owned(db: asyncpg.Connection, thread_id: str) -> bool:
    """Whether the thread's session is stored (its owner row)."""
    sql = "SELECT count(*) FROM session_owners WHERE session_id = $1"
    return bool(await db.fetchval(sql, uuid.UUID(thread_id)))


async def test_subgraphs_answer_by_assistant_id_or_graph_id(sdk: LangGraphClient) -> None:
    assert await sdk.assistants.get_subgraphs(ASSISTANT) == {}
    assert await sdk.assistants.get_subgraphs("vera", recurse=True) == {}
    assert await sdk.assistants.get_subgraphs(ASSISTANT, namespace="model") == {}
    with pytest.raises(NotFoundError):
        await sdk.assistants.get_subgraphs(str(uuid.uuid4()))


async def test_delete_removes_an_ended_run_and_only_the_callers(
    sdk: LangGraphClient, them: LangGraphClient
) -> None:
    tid = (await sdk.threads.create())["thread_id"]
    await sdk.runs.wait(tid, "vera", input=user("Hello"))
    first = (await sdk.runs.list(tid))[0]["run_id"]
    with pytest.raises(NotFoundError):
        await them.runs.delete(tid, first)
    await sdk.runs.delete(tid, first)
    assert await sdk.runs.list(tid) == []
    with pytest.raises(NotFoundError):
        await sdk.runs.get(tid, first)
    with pytest.raises(NotFoundError):
        await sdk.runs.delete(tid, first)
    # The thread and what the run stored stay.
    assert [m["type"] for m in (await sdk.threads.get_state(tid))["values"]["messages"]] == [
        "human",
        "ai",
    ]


async def test_delete_of_a_running_run_stops_it_then_deletes_it(
    database_dsn: str, db: asyncpg.Connection
) -> None:
    model = gated()
    settings = settings_for(database_dsn, api_key=KEY)
    async with serve(create_app(settings, model=model)) as url:
        sdk = get_client(url=url, api_key=KEY)
        tid = (await sdk.threads.create())["thread_id"]
        run = await sdk.runs.create(tid, "vera", input=user(QUESTION))
        assert model.started is not None and model.gate is not None
        await model.started.wait()
        await sdk.runs.delete(tid, run["run_id"])
        assert await runs_of(db, tid) == 0
        assert (await sdk.threads.get(tid))["status"] == "idle"  # its lease is free
        model.gate.set()
        again = await sdk.runs.wait(tid, "vera", input=user("Hello"))
        assert again["messages"][-1]["type"] == "ai"
        await sdk.http.client.aclose()


async def test_cancel_many_stops_the_named_runs_or_all_of_a_status_of_the_callers(
    database_dsn: str,
) -> None:
    model = gated()
    settings = settings_for(database_dsn, api_key=KEY, api_keys=f"surface-other:{OTHER}")
    async with serve(create_app(settings, model=model)) as url:
        sdk = get_client(url=url, api_key=KEY)
        them = get_client(url=url, api_key=OTHER)
        tid = (await sdk.threads.create())["thread_id"]
        run = await sdk.runs.create(tid, "vera", input=user(QUESTION))
        assert model.started is not None and model.gate is not None
        await model.started.wait()
        with pytest.raises(NotFoundError):  # not the other principal's run
            await them.runs.cancel_many(thread_id=tid, run_ids=[run["run_id"]])
        with pytest.raises(NotFoundError):  # they have none running
            await them.runs.cancel_many(status="running")
        assert (await sdk.runs.get(tid, run["run_id"]))["status"] == "running"
        await sdk.runs.cancel_many(thread_id=tid, run_ids=[run["run_id"]])
        await wait_until(
            lambda: _status_is(sdk, tid, run["run_id"], "interrupted"),
        )
        with pytest.raises(NotFoundError):  # nothing of the caller's runs any more
            await sdk.runs.cancel_many(status="all")
        # A second run, stopped by status.
        model.started.clear()
        second = await sdk.runs.create(tid, "vera", input=user(QUESTION))
        await model.started.wait()
        await sdk.runs.cancel_many(status="all")
        await wait_until(lambda: _status_is(sdk, tid, second["run_id"], "interrupted"))
        http = sdk.http.client
        refused = [
            await http.post("/runs/cancel", json={}),
            await http.post("/runs/cancel", json={"status": "all", "thread_id": tid}),
            await http.post("/runs/cancel", json={"status": "done"}),
            await http.post("/runs/cancel", json={"thread_id": tid}),
            await http.post("/runs/cancel", json={"thread_id": "x", "run_ids": ["y"]}),
        ]
        assert [r.status_code for r in refused] == [422] * 5, [r.text for r in refused]
        model.gate.set()
        await sdk.http.client.aclose()
        await them.http.client.aclose()


async def _status_is(sdk: LangGraphClient, tid: str, run_id: str, status: str) -> bool:
    return bool((await sdk.runs.get(tid, run_id))["status"] == status)


async def test_a_threadless_wait_runs_on_a_thread_of_the_callers_deleted_once_it_ended(
    sdk: LangGraphClient, server: str, db: asyncpg.Connection
) -> None:
    async with httpx.AsyncClient(base_url=server, headers={"X-API-Key": KEY}, timeout=30) as h:
        answer = await h.post("/runs/wait", json={"assistant_id": "vera", "input": user("Hi")})
    assert answer.status_code == 200, answer.text
    assert [m["type"] for m in answer.json()["messages"]] == ["human", "ai"]
    tid = answer.headers["Content-Location"].split("/")[2]
    await wait_until(lambda: _gone(db, tid))
    with pytest.raises(NotFoundError):
        await sdk.threads.get(tid)
    values = await sdk.runs.wait(None, "vera", input=user("Hello again"))
    assert values["messages"][-1]["type"] == "ai"


async def _gone(db: asyncpg.Connection, tid: str) -> bool:
    checkpoints = "SELECT count(*) FROM checkpoints WHERE session_id = $1"
    return not await owned(db, tid) and not await db.fetchval(checkpoints, uuid.UUID(tid))


async def test_a_threadless_stream_streams_as_a_threads_run_does(
    sdk: LangGraphClient, db: asyncpg.Connection
) -> None:
    parts = [p async for p in sdk.runs.stream(None, "vera", input=user("Hi"), stream_mode="values")]
    assert [p.event for p in parts][:2] == ["metadata", "values"]
    assert parts[-1].data["messages"][-1]["type"] == "ai"
    assert parts[0].data["attempt"] == 1


async def test_a_threadless_background_run_is_joined_then_its_thread_goes_or_is_kept(
    sdk: LangGraphClient, them: LangGraphClient, db: asyncpg.Connection
) -> None:
    run = await sdk.runs.create(None, "vera", input=user("Hi"), on_completion="keep")
    assert run["kwargs"]["temporary"] is False and run["status"] in ("pending", "running")
    tid = run["thread_id"]
    values = await sdk.runs.join(tid, run["run_id"])
    assert values["messages"][-1]["type"] == "ai"
    kept = await sdk.threads.get(tid)
    assert kept["metadata"]["graph_id"] == "vera"
    assert (await sdk.runs.get(tid, run["run_id"]))["status"] == "success"
    with pytest.raises(NotFoundError):
        await them.threads.get(tid)
    temporary = await sdk.runs.create(None, "vera", input=user("Hi"))
    assert temporary["kwargs"]["temporary"] is True
    await wait_until(lambda: _gone(db, temporary["thread_id"]))
    assert await owned(db, tid)


async def test_a_threadless_run_checks_its_request_and_stores_nothing_for_a_bad_one(
    sdk: LangGraphClient, server: str, db: asyncpg.Connection
) -> None:
    since = await db.fetchval("SELECT clock_timestamp()")
    made = "SELECT count(*) FROM session_owners WHERE created_at >= $1"
    async with httpx.AsyncClient(base_url=server, headers={"X-API-Key": KEY}, timeout=30) as h:
        bad = [
            await h.post("/runs", json={"assistant_id": "vera", "on_completion": "later"}),
            await h.post("/runs/wait", json={"assistant_id": "nobody"}),
            await h.post("/runs/stream", json={"assistant_id": "vera", "webhook": "http://x"}),
            await h.post("/runs", json={"assistant_id": "vera", "if_not_exists": "create"}),
            await h.post("/runs/wait", json={"assistant_id": str(uuid.uuid4())}),
            await h.post("/runs/wait", json={"assistant_id": "vera", "command": {"resume": "yes"}}),
        ]
    assert [r.status_code for r in bad] == [422, 422, 422, 422, 404, 400], [r.text for r in bad]
    assert "thread_id" in bad[-1].json()["message"]
    assert await db.fetchval(made, since) == 0


async def test_run_and_thread_metadata_and_config_hold_what_langgraph_devs_do(
    sdk: LangGraphClient,
) -> None:
    """The values `langgraph dev` (langgraph_api 0.16) answers for the same calls, its own
    fields (auth, request ids, plan, URL) aside."""
    thread = await sdk.threads.create(metadata={"who": "me"})
    assert thread["config"] == {}
    tid = thread["thread_id"]
    config = {"configurable": {"x": 1}, "tags": ["a"]}
    await sdk.runs.wait(tid, "vera", input=user("Hi"), metadata={"m": 1}, config=config)
    run = (await sdk.runs.list(tid))[0]
    assert run["metadata"] == {
        "created_by": "system",
        "who": "me",
        "graph_id": "vera",
        "assistant_id": ASSISTANT,
        "m": 1,
    }
    identity = {"run_id": run["run_id"], "thread_id": tid, "graph_id": "vera", "user_id": ""}
    ran = run["kwargs"]["config"]
    assert ran["configurable"] == {"x": 1, "assistant_id": ASSISTANT, **identity}
    assert ran["tags"] == ["a"] and run["kwargs"]["context"] == {"x": 1}
    assert ran["metadata"]["run_attempt"] == 1 and ran["metadata"]["who"] == "me"
    assert (await sdk.threads.get(tid))["config"] == {"configurable": {}, "tags": ["a"]}
    checkpoint = (await sdk.threads.get_state(tid))["metadata"]
    assert {"who": "me", "user_id": "", "run_attempt": 1}.items() <= checkpoint.items()
    # A threadless run's: no thread's metadata in the run's; the thread's its graph's.
    alone = await sdk.runs.create(None, "vera", input=user("Hi"), on_completion="keep")
    assert alone["metadata"] == {"created_by": "system", "assistant_id": ASSISTANT}
    await sdk.runs.join(alone["thread_id"], alone["run_id"])
    kept = await sdk.threads.get(alone["thread_id"])
    assert kept["metadata"] == {"graph_id": "vera", "assistant_id": ASSISTANT}
    assert kept["config"] == {"configurable": {}}
