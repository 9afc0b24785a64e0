"""The Agent Server door of the real server (`python -m src.api`, as deployed) answers the
LangGraph SDK's thread calls in the shapes `langgraph dev` answers them (issue 26): the
same scenario (`tests/agent_scenario.py`) against both, on one database, every answer's
key set and JSON types compared, ids, times and free-form parts aside
(`tests/agent_shapes.py`). The run calls likewise (`runs.stream` of a tool turn, `wait`,
`create`, `join`, `get`, `list`): the Run objects' keys and types, the stream's event
names in order and each event's data; and the tool turn streamed in every stream mode,
without and with subgraphs, likewise. Then, on the real server: a Studio-made thread is
a session listed by `GET /sessions`, and the sync client works too. And the rest of the
surface (`surface_calls`: subgraphs, threadless runs, deletes, bulk cancels), with the keys
of runs' and threads' metadata and config."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from langgraph_sdk import get_client, get_sync_client

from src.api.agent_server.graphs import assistant_id_of
from tests.agent_runs import EVERY_STREAM_MODE, RUN_ROUTES, TOOL_TURN, TOOL_TURN_EVENTS, serves
from tests.agent_scenario import run_calls, stream_mode_calls, surface_calls, thread_calls
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
        # Each scenario makes many calls, more than a minute's default rate.
        server_processes(
            database_dsn, [logs / "vera.log"], API_KEY=KEY, RATE_LIMIT_PER_MINUTE="10000"
        ) as [vera],
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


@pytest.fixture(scope="module")
def run_answers(servers: tuple[str, str]) -> tuple[dict, dict]:
    """The run scenario's answers: Vera's on the calls it serves, langgraph dev's on all."""
    vera_url, studio_url = servers
    openapi = httpx.get(f"{vera_url}/openapi.json", headers={"X-API-Key": KEY}).json()
    served = frozenset(call for call in RUN_ROUTES if serves(openapi, call))

    async def both() -> tuple[dict, dict]:
        vera = get_client(url=vera_url, api_key=KEY)
        studio = get_client(url=studio_url)
        return await run_calls(vera, served), await run_calls(studio, frozenset(RUN_ROUTES))

    return asyncio.run(both())


COMPARED_RUN_CALLS = [
    "runs.stream",
    "runs.wait",
    "runs.create",
    "runs.join",
    "runs.get",
    "runs.list",
]


@pytest.mark.parametrize("call", COMPARED_RUN_CALLS)
def test_every_run_call_answers_in_langgraph_devs_shapes(
    run_answers: tuple[dict, dict], call: str
) -> None:
    ours, theirs = run_answers
    check_run_answer(theirs, call)  # what the SDK gets from langgraph dev, first
    if call not in ours:
        pytest.xfail(f"Vera does not serve {call} yet")
    assert not differences(ours[call], theirs[call])
    check_run_answer(ours, call)
    if call == "runs.stream":
        assert ours[call]["names"] == theirs[call]["names"]


def check_run_answer(got: dict, call: str) -> None:
    """What the scenario's answer to `call` says, on either server."""
    answer = got[call]
    if call == "runs.stream":  # langgraph dev's order of the tool turn's events
        assert answer["names"] == TOOL_TURN_EVENTS
        assert [m["type"] for m in answer["event values"][-1]["messages"]] == [
            *("human", "ai", "tool", "ai")
        ]
        assert [next(iter(u)) for u in answer["event updates"]] == ["model", "tools", "model"]
    if call in ("runs.wait", "runs.join"):
        assert [m["type"] for m in answer["messages"]][-2:] == ["human", "ai"]
    if call == "runs.create":
        assert answer["status"] in ("pending", "running")
    if call == "runs.get" and "runs.join" in got:
        assert answer["status"] == "success"
        assert answer["run_id"] == got["runs.create"]["run_id"]
    if call == "runs.list":
        assert len(answer) == len(
            [c for c in got if c in ("runs.stream", "runs.wait", "runs.create")]
        )
        if "runs.join" in got:
            assert {r["status"] for r in answer} == {"success"}


@pytest.fixture(scope="module")
def stream_mode_answers(servers: tuple[str, str]) -> tuple[dict, dict]:
    """The tool turn streamed in every mode: Vera's answers, langgraph dev's."""
    vera_url, studio_url = servers

    async def both() -> tuple[dict, dict]:
        vera = get_client(url=vera_url, api_key=KEY)
        studio = get_client(url=studio_url)
        return await stream_mode_calls(vera), await stream_mode_calls(studio)

    return asyncio.run(both())


@pytest.mark.parametrize("subgraphs", [False, True])
@pytest.mark.parametrize("mode", EVERY_STREAM_MODE)
def test_every_stream_mode_streams_langgraph_devs_events(
    stream_mode_answers: tuple[dict, dict], mode: str, subgraphs: bool
) -> None:
    ours, theirs = (
        got[f"runs.stream {mode} (subgraphs={subgraphs})"] for got in stream_mode_answers
    )
    assert theirs["names"][0] == "metadata" and "error" not in theirs["names"]
    if mode != "custom":  # Vera's graph writes no custom data: the run's metadata only
        assert len(theirs["names"]) > 1
    assert ours["names"] == theirs["names"]
    # As many events of each name (a token each, the same offline model on both).
    counts = [{k: len(v) for k, v in got.items() if k != "names"} for got in (ours, theirs)]
    assert counts[0] == counts[1]
    assert not differences(ours, theirs)


def test_a_stream_mode_neither_serves_is_refused_by_both(servers: tuple[str, str]) -> None:
    """`tools` and `lifecycle` (in the SDK's modes, for the v2 event streaming that
    `langgraph dev`'s runs do not serve): a 422 from both, naming the field."""
    for url, headers in ((servers[0], {"X-API-Key": KEY}), (servers[1], {})):
        with httpx.Client(base_url=url, headers=headers, timeout=30) as http:
            thread_id = http.post("/threads", json={}).json()["thread_id"]
            for mode in ("tools", "lifecycle"):
                body = {"assistant_id": "vera", "input": TOOL_TURN, "stream_mode": mode}
                answer = http.post(f"/threads/{thread_id}/runs/stream", json=body)
                assert answer.status_code == 422, (url, mode, answer.text)
                assert "stream_mode" in answer.text
            http.delete(f"/threads/{thread_id}")


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


@pytest.fixture(scope="module")
def surface_answers(servers: tuple[str, str]) -> tuple[dict, dict]:
    """The rest of the surface's answers (`surface_calls`), Vera's and langgraph dev's."""
    vera_url, studio_url = servers
    assistant_id = str(assistant_id_of("vera"))  # langgraph dev's subgraphs take no graph id

    async def both() -> tuple[dict, dict]:
        vera = get_client(url=vera_url, api_key=KEY)
        studio = get_client(url=studio_url)
        return await surface_calls(vera, assistant_id), await surface_calls(studio, assistant_id)

    return asyncio.run(both())


def test_the_rest_of_the_surface_answers_in_langgraph_devs_shapes(
    surface_answers: tuple[dict, dict],
) -> None:
    ours, theirs = surface_answers
    assert ours.keys() == theirs.keys()
    found = {call: differences(ours[call], theirs[call]) for call in ours}
    assert not {call: lines for call, lines in found.items() if lines}
    same = [
        "assistants.get_subgraphs",
        "assistants.get_subgraphs (recurse)",
        "runs.stream (threadless)",
        "runs.delete",
        "runs.list (after delete)",
        "runs.delete (again)",
        "runs.cancel_many (none running)",
        "runs.cancel_many (status and ids)",
    ]
    assert {call: ours[call] for call in same} == {call: theirs[call] for call in same}
    assert ours["runs.stream (threadless)"] == TOOL_TURN_EVENTS
    assert ours["runs.get (threadless)"]["status"] == "success"


# langgraph_api's own fields: its auth, request ids and timing, its plan, URL and version.
SERVER_OWN = re.compile(r"^(langgraph_(auth_\w+|request_id|plan|api_url|api_version)|__\w+)$")


def dig(answer: Any, *path: str) -> dict[str, Any]:
    for key in path:
        answer = answer[key]
    return answer


def keys(part: dict[str, Any]) -> set[str]:
    return {key for key in part if not SERVER_OWN.match(key)}


@pytest.mark.parametrize(
    ("call", "path"),
    [
        ("runs.get (metadata)", ("metadata",)),
        ("runs.get (metadata)", ("kwargs",)),
        ("runs.get (metadata)", ("kwargs", "config")),
        ("runs.get (metadata)", ("kwargs", "config", "configurable")),
        ("runs.get (metadata)", ("kwargs", "context")),
        ("runs.get (threadless)", ("metadata",)),
        ("runs.get (threadless)", ("kwargs", "config", "configurable")),
        ("threads.get (after a run)", ("metadata",)),
        ("threads.get (after a run)", ("config",)),
        ("threads.get (threadless)", ("metadata",)),
        ("threads.get (threadless)", ("config",)),
    ],
)
def test_run_and_thread_metadata_and_config_hold_langgraph_devs_keys(
    surface_answers: tuple[dict, dict], call: str, path: tuple[str, ...]
) -> None:
    """The keys of a run's and a thread's metadata and config, langgraph_api's own aside
    (issue 26: found different by an outside diff)."""
    ours, theirs = surface_answers
    assert keys(dig(ours[call], *path)) == keys(dig(theirs[call], *path))


@pytest.mark.parametrize(
    ("call", "path"),
    [
        ("runs.get (metadata)", ("kwargs", "config", "metadata")),
        ("threads.get_state (after a run)", ("metadata",)),
    ],
)
def test_run_config_and_checkpoint_metadata_hold_langgraph_devs_keys_and_verass(
    surface_answers: tuple[dict, dict], call: str, path: tuple[str, ...]
) -> None:
    """What a run's config and its checkpoints' metadata hold: langgraph dev's keys (its
    own aside), and Vera's (the run and turn ids its turn runner records). A checkpoint's
    `thread_id` is langgraph dev's checkpointer's: LangGraph's (`get_checkpoint_metadata`,
    as langgraph-checkpoint-postgres stores it) leaves it out."""
    ours, theirs = surface_answers
    expected = keys(dig(theirs[call], *path)) - ({"thread_id"} if "state" in call else set())
    assert expected <= keys(dig(ours[call], *path))
