"""The Agent Server door's threads (issue 26, first half), driven by the real `langgraph_sdk`
clients (async and sync) against the app served by uvicorn: a thread is a Vera session
both ways, its state and history are the graph's, writes go through the session's lease,
bad input changes nothing."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

import asyncpg
import httpx
import pytest
from langgraph_sdk import get_sync_client
from langgraph_sdk.client import LangGraphClient
from langgraph_sdk.errors import ConflictError, NotFoundError, UnprocessableEntityError

from src.api.agent_server.graphs import GRAPH_IDS, assistant_id_of
from src.api.app import create_app
from tests.api_harness import chat, serve, settings_for
from tests.fakes import FakeModel

KEY = "threads-key-0123456789abcdefghijklmno"
OTHER = "other-key-0123456789abcdefghijklmnopq"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def api_key() -> str:
    return KEY


@pytest.fixture
def api_keys() -> str:
    return f"threads-other:{OTHER}"


def texts(state: dict) -> list[str]:
    return [m["content"] for m in state["values"]["messages"]]


def test_the_assistants_are_the_graphs_of_langgraph_json() -> None:
    declared = json.loads((ROOT / "langgraph.json").read_text())["graphs"]
    assert tuple(declared) == GRAPH_IDS


async def test_a_thread_lives_as_a_session_through_every_call(
    sdk: LangGraphClient, http: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    [assistant] = await sdk.assistants.search()
    assert assistant["assistant_id"] == str(assistant_id_of("vera"))
    assert (await sdk.assistants.get("vera"))["graph_id"] == "vera"
    assert {n["id"] for n in (await sdk.assistants.get_graph("vera"))["nodes"]} >= {
        "model",
        "tools",
    }
    schemas = await sdk.assistants.get_schemas(assistant["assistant_id"])
    assert "messages" in schemas["state_schema"]["properties"]

    thread = await sdk.threads.create(metadata={"topic": "weather"}, ttl=90)
    tid = thread["thread_id"]
    assert (thread["metadata"], thread["status"], thread["values"]) == (
        {"topic": "weather"},
        "idle",
        None,
    )
    assert (await sdk.threads.get(tid))["metadata"] == {"topic": "weather"}
    assert (await http.get(f"/sessions/{tid}/ttl")).json()["ttl_minutes"] == 90  # one TTL
    assert (await sdk.threads.get_state(tid))["checkpoint"] is None
    assert await sdk.threads.get_history(tid) == []
    assert tid not in {s["session_id"] for s in (await http.get("/sessions")).json()["sessions"]}

    await chat(http, tid, "first question")  # a /chat turn on the thread
    listed = (await http.get("/sessions")).json()["sessions"]
    assert (listed[0]["session_id"], listed[0]["title"]) == (tid, "first question")
    state = await sdk.threads.get_state(tid)
    transcript = (await http.get(f"/sessions/{tid}/messages")).json()["messages"]
    assert texts(state) == [m["content"] for m in transcript]
    assert [m["type"] for m in state["values"]["messages"]] == ["human", "ai"]
    assert texts(state)[0] == "first question"
    got = await sdk.threads.get(tid)
    assert (got["values"], got["metadata"]["topic"], got["metadata"]["graph_id"]) == (
        state["values"],
        "weather",
        "vera",
    )

    history = await sdk.threads.get_history(tid, limit=2)
    assert [h["checkpoint_id"] for h in history][:1] == [state["checkpoint_id"]]
    older = await sdk.threads.get_history(tid, limit=10, before=history[-1]["checkpoint"])
    assert older and older[0]["checkpoint_id"] == history[-1]["parent_checkpoint_id"]
    everything = await sdk.threads.get_history(tid, limit=100)
    assert [h["checkpoint_id"] for h in everything] == [
        h["checkpoint_id"] for h in [*history, *older]
    ]

    updated = await sdk.threads.update(tid, metadata={"stage": 2})
    assert updated["metadata"]["topic"] == "weather" and updated["metadata"]["stage"] == 2
    found = await sdk.threads.search(metadata={"stage": 2})
    assert [t["thread_id"] for t in found] == [tid]

    written = await sdk.threads.update_state(
        tid, {"messages": [{"role": "user", "content": "a note"}]}, as_node="model"
    )
    after = await sdk.threads.get_state(tid)
    assert after["checkpoint_id"] == written["checkpoint_id"]
    assert texts(after)[-1] == "a note" and after["metadata"]["source"] == "update"
    transcript = (await http.get(f"/sessions/{tid}/messages")).json()["messages"]
    assert [m["content"] for m in transcript][-1] == "a note"

    at = await sdk.threads.get_state(tid, checkpoint_id=state["checkpoint_id"])
    assert texts(at) == texts(state)
    same = await sdk.threads.get_state(tid, checkpoint=state["checkpoint"])
    assert same["checkpoint_id"] == state["checkpoint_id"]
    fork = await sdk.threads.update_state(
        tid,
        {"messages": [{"role": "user", "content": "another way"}]},
        as_node="model",
        checkpoint_id=state["checkpoint_id"],
    )
    forked = await sdk.threads.get_state(tid)
    assert forked["checkpoint_id"] == fork["checkpoint_id"]
    assert texts(forked) == [*texts(state), "another way"]

    copy = await sdk.threads.copy(tid)
    assert copy["thread_id"] != tid and copy["metadata"]["stage"] == 2
    assert texts(await sdk.threads.get_state(copy["thread_id"])) == texts(forked)
    newest = await sdk.threads.search(limit=2, sort_by="created_at")
    assert newest[0]["thread_id"] == copy["thread_id"]

    await sdk.threads.delete(tid)
    with pytest.raises(NotFoundError):
        await sdk.threads.get(tid)
    assert (await http.get(f"/sessions/{tid}/messages")).status_code == 404
    sid = uuid.UUID(tid)
    for table in ("conversations", "session_owners", "checkpoints", "turn_leases"):
        assert not await db.fetchval(f"SELECT count(*) FROM {table} WHERE session_id = $1", sid)
    assert texts(await sdk.threads.get_state(copy["thread_id"])) == texts(forked)  # its own


async def test_a_chat_session_is_a_thread_and_bad_input_changes_nothing(
    sdk: LangGraphClient, http: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    sid = str(uuid.uuid4())
    await chat(http, sid, "from the chat page")
    assert texts(await sdk.threads.get_state(sid))[0] == "from the chat page"
    assert sid in {t["thread_id"] for t in await sdk.threads.search(limit=100)}
    with pytest.raises(ConflictError):
        await sdk.threads.create(thread_id=sid)
    again = await sdk.threads.create(thread_id=sid, if_exists="do_nothing", metadata={"x": 1})
    assert again["thread_id"] == sid and "x" not in again["metadata"]
    owners = await db.fetchval("SELECT count(*) FROM session_owners")
    checkpoints = await db.fetchval(
        "SELECT count(*) FROM checkpoints WHERE session_id = $1", uuid.UUID(sid)
    )
    with pytest.raises(UnprocessableEntityError, match="nowhere"):
        await sdk.threads.update_state(
            sid, {"messages": [{"role": "user", "content": "x"}]}, as_node="nowhere"
        )
    with pytest.raises(NotFoundError):
        await sdk.threads.get_state(sid, checkpoint_id="1f000000-0000-6000-8000-000000000000")
    bad = await http.post("/threads", json={"supersteps": [{"updates": []}]})
    assert bad.status_code == 422 and bad.json()["details"][0]["field"] == "supersteps"
    assert (await http.post("/threads", json={"ttl": {"ttl": -1}})).status_code == 422
    # Text that is not Unicode (an unpaired surrogate, as JSON's "\ud800" spells it) is
    # refused wherever it hides, as /chat refuses it: stored, no client could read it back.
    lone = '"\\ud800"'
    message = '{"role": "user", "content": ' + lone + "}"
    for method, path, body in [
        ("POST", "/threads", '{"metadata": {"k": ' + lone + "}}"),
        ("PATCH", f"/threads/{sid}", '{"metadata": {"k": [' + lone + "]}}"),
        ("POST", f"/threads/{sid}/state", '{"values": {"messages": [' + message + "]}}"),
    ]:
        headers = {"Content-Type": "application/json"}
        refused = await http.request(method, path, content=body, headers=headers)
        assert refused.status_code == 422, (path, refused.text)
        assert "unpaired surrogate" in refused.text
    assert (await http.post("/assistants", json={"graph_id": "vera"})).json()[
        "code"
    ] == "not_implemented"
    assert (
        await db.fetchval("SELECT count(*) FROM checkpoints WHERE session_id = $1", uuid.UUID(sid))
        == checkpoints
    )
    assert await db.fetchval("SELECT count(*) FROM session_owners") == owners


async def test_another_principals_thread_is_an_unknown_id_on_every_route(
    sdk: LangGraphClient, server: str, db: asyncpg.Connection
) -> None:
    mine = (await sdk.threads.create(metadata={"who": "me"}))["thread_id"]
    async with httpx.AsyncClient(base_url=server, headers={"X-API-Key": KEY}, timeout=30) as h:
        await chat(h, mine, "mine")
    checkpoint_id = (await sdk.threads.get_state(mine))["checkpoint_id"]
    before = await db.fetch("SELECT * FROM checkpoints ORDER BY checkpoint_id")
    unknown = str(uuid.uuid4())

    def routes(tid: str) -> list[tuple[str, str, dict | None]]:
        update = {"values": {"messages": [{"role": "user", "content": "x"}]}, "as_node": "model"}
        return [
            ("GET", f"/threads/{tid}", None),
            ("PATCH", f"/threads/{tid}", {"metadata": {"who": "them"}}),
            ("DELETE", f"/threads/{tid}", None),
            ("POST", f"/threads/{tid}/copy", None),
            ("GET", f"/threads/{tid}/state", None),
            ("GET", f"/threads/{tid}/state/{checkpoint_id}", None),
            (
                "POST",
                f"/threads/{tid}/state/checkpoint",
                {"checkpoint": {"checkpoint_id": checkpoint_id}},
            ),
            ("POST", f"/threads/{tid}/state", update),
            ("GET", f"/threads/{tid}/history", None),
            ("POST", f"/threads/{tid}/history", {"limit": 5}),
        ]

    async with httpx.AsyncClient(base_url=server, headers={"X-API-Key": OTHER}, timeout=30) as them:
        for (method, path, body), (_, unknown_path, _) in zip(
            routes(mine), routes(unknown), strict=True
        ):
            foreign = await them.request(method, path, json=body)
            missing = await them.request(method, unknown_path, json=body)
            assert foreign.status_code == missing.status_code == 404, path
            assert foreign.json()["message"].replace(mine, unknown) == missing.json()["message"]
        assert (await them.post("/threads/search", json={})).json() == []
        assert (await them.post("/threads", json={"thread_id": mine})).status_code == 404
    assert await db.fetch("SELECT * FROM checkpoints ORDER BY checkpoint_id") == before
    assert (await sdk.threads.get(mine))["metadata"]["who"] == "me"
    assert not await db.fetchval(
        "SELECT count(*) FROM session_owners WHERE session_id = $1", uuid.UUID(unknown)
    )


async def test_the_sync_client_reads_and_writes_threads(server: str) -> None:
    await asyncio.to_thread(sync_calls, server)


def sync_calls(server: str) -> None:
    with get_sync_client(url=server, api_key=KEY) as sdk:
        thread = sdk.threads.create(metadata={"client": "sync"})
        tid = thread["thread_id"]
        assert sdk.threads.get(tid)["metadata"] == {"client": "sync"}
        sdk.threads.update_state(
            tid, {"messages": [{"role": "user", "content": "hi"}]}, as_node="model"
        )
        assert texts(sdk.threads.get_state(tid)) == ["hi"]
        assert sdk.threads.get_history(tid)[0]["metadata"]["source"] == "update"
        assert sdk.threads.update(tid, metadata={"n": 1})["metadata"]["n"] == 1
        assert tid in {t["thread_id"] for t in sdk.threads.search(metadata={"client": "sync"})}
        sdk.threads.delete(tid)
        with pytest.raises(NotFoundError):
            sdk.threads.get(tid)


async def test_the_readme_sdk_example_runs_as_written(database_dsn: str) -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## LangGraph SDK", 1)[1].split("\n## ", 1)[0]
    example = section.split("```python\n", 1)[1].split("```", 1)[0]
    async with serve(create_app(settings_for(database_dsn), model=FakeModel())) as url:
        code = example.replace("http://127.0.0.1:8000", url)
        printed: list[object] = []
        await asyncio.to_thread(exec, code, {"print": printed.append})
    assert printed[0] == "metadata" and printed[-1] == "ai"  # a run streamed, then its answer
    assert set(printed[1:-1]) == {"updates"} and len(printed) >= 4
