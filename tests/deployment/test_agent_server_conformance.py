"""The Agent Server door of the real server (`python -m src.api`, as deployed) answers the
LangGraph SDK's thread calls in the shapes `langgraph dev` answers them (issue 26): the
same scenario (`tests/agent_scenario.py`) against both, on one database, every answer's
key set and JSON types compared, ids, times and free-form parts aside
(`tests/agent_shapes.py`). Then, on the real server: a Studio-made thread is a session
listed by `GET /sessions`, and the sync client works too."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import httpx
import pytest
from langgraph_sdk import get_client, get_sync_client

from tests.agent_scenario import thread_calls
from tests.agent_shapes import differences
from tests.processes import server_processes
from tests.studio_harness import LANGGRAPH_DEV_MARKS, langgraph_dev_server

pytestmark = LANGGRAPH_DEV_MARKS

KEY = "conformance-key-0123456789abcdefghijk"


@pytest.fixture(scope="module")
def servers(
    database_dsn: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, str]]:
    """(Vera's URL, langgraph dev's URL), both on the run's database."""
    logs = tmp_path_factory.mktemp("conformance")
    with (
        server_processes(database_dsn, [logs / "vera.log"], API_KEY=KEY) as [vera],
        langgraph_dev_server(database_dsn, logs / "langgraph-dev.log") as (studio, _),
    ):
        yield vera, studio


def test_every_thread_call_answers_in_langgraph_devs_shapes(servers: tuple[str, str]) -> None:
    vera_url, studio_url = servers

    async def both() -> tuple[dict, dict]:
        vera = get_client(url=vera_url, api_key=KEY)
        studio = get_client(url=studio_url)

        async def chat_turn(thread_id: str, text: str) -> None:
            async with httpx.AsyncClient(
                base_url=vera_url, headers={"X-API-Key": KEY}, timeout=60
            ) as http:
                answer = await http.post(
                    "/chat/complete", json={"session_id": thread_id, "message": text}
                )
                answer.raise_for_status()

        async def studio_run(thread_id: str, text: str) -> None:
            await studio.runs.wait(
                thread_id, "vera", input={"messages": [{"role": "user", "content": text}]}
            )

        return await thread_calls(vera, chat_turn), await thread_calls(studio, studio_run)

    ours, theirs = asyncio.run(both())
    assert ours.keys() == theirs.keys()
    found = {call: differences(ours[call], theirs[call]) for call in ours}
    assert not {call: lines for call, lines in found.items() if lines}
    # One assistant id for the graph on both servers (a client may keep it).
    assert ours["assistants.get"]["assistant_id"] == theirs["assistants.get"]["assistant_id"]
    # The calls did what they say, on Vera's side: the turn's messages, then the note.
    messages = ours["threads.get_state"]["values"]["messages"]
    assert [m["type"] for m in messages][:1] == ["human"] and len(messages) >= 2
    assert ours["threads.update"]["metadata"]["stage"] == "two"
    assert (
        ours["threads.get_state (checkpoint)"]["checkpoint"]
        == (ours["threads.get_history"][-1]["checkpoint"])
    )


def test_a_studio_thread_is_a_session_of_the_real_server(servers: tuple[str, str]) -> None:
    vera_url, studio_url = servers
    question = f"Weather in Lisbon? {uuid.uuid4().hex[:6]}"

    async def studio_thread() -> str:
        studio = get_client(url=studio_url)
        thread = await studio.threads.create()
        await studio.runs.wait(
            thread["thread_id"], "vera", input={"messages": [{"role": "user", "content": question}]}
        )
        return str(thread["thread_id"])

    thread_id = asyncio.run(studio_thread())
    headers = {"X-API-Key": KEY}
    listed = httpx.get(f"{vera_url}/sessions", headers=headers, params={"limit": 100}).json()
    assert {s["session_id"]: s["title"] for s in listed["sessions"]}[thread_id] == question
    with get_sync_client(url=vera_url, api_key=KEY) as sdk:
        state = sdk.threads.get_state(thread_id)
        assert state["values"]["messages"][0]["content"] == question
        assert thread_id in {t["thread_id"] for t in sdk.threads.search(limit=100)}
        copy = sdk.threads.copy(thread_id)
        assert sdk.threads.get_state(copy["thread_id"])["values"] == state["values"]
        sdk.threads.delete(copy["thread_id"])
        sdk.threads.delete(thread_id)
    assert (
        httpx.get(f"{vera_url}/sessions/{thread_id}/messages", headers=headers).status_code == 404
    )


def test_ok_answers_without_a_key_and_pings_the_database(servers: tuple[str, str]) -> None:
    vera_url, _ = servers
    assert httpx.get(f"{vera_url}/ok").json() == {"ok": True, "services": {"database": "skipped"}}
    pinged = httpx.get(f"{vera_url}/ok", params={"check_db": 1}).json()
    assert pinged["services"] == {"database": "healthy"}
    assert httpx.get(f"{vera_url}/assistants/vera").status_code == 401  # the rest needs a key
