"""`langgraph_sdk`, async and sync, drives a thread end to end on the real server
(`python -m src.api`, issue 26): a tool turn streamed in each stream mode, state and
history, a fork from a checkpoint, `update_state`, an approval interrupt resumed with
`Command(resume)`, `interrupt_before`, a background run, one cancelled mid-turn (`interrupt`,
then `rollback`; on a second server on the same database, whose real `ChatOpenAI` asks a
scripted OpenAI-protocol server that the test holds), search, copy and delete. Every
answer is parsed by the SDK itself; the assertions check what the thread holds."""

from __future__ import annotations

import asyncio
import inspect
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from langgraph_sdk import get_client, get_sync_client
from langgraph_sdk.errors import NotFoundError

from tests.fake_openai import KEY as MODEL_KEY
from tests.fake_openai import MODEL, Reply
from tests.held_openai import HeldModel, threaded
from tests.processes import server_processes

KEY = "sdk-scenario-key-0123456789abcdefghij"
MODES = ["values", "updates", "messages-tuple", "custom"]


@pytest.fixture(scope="module")
def server(database_dsn: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    log = tmp_path_factory.mktemp("sdk-scenario") / "vera.log"
    # One SDK call per step, and the background run asked about until it ends.
    env = {
        "API_KEY": KEY,
        "AGENT_CONFIRM_TOOLS": "get_stock_price",
        "RATE_LIMIT_PER_MINUTE": "1000",
    }
    with server_processes(database_dsn, [log], **env) as [url]:
        yield url


@pytest.fixture(scope="module")
def held_server(
    database_dsn: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, HeldModel]]:
    """A second server on the scenario's database, its model the real `ChatOpenAI`."""
    log = tmp_path_factory.mktemp("sdk-scenario-held") / "vera.log"
    model = HeldModel()
    with threaded(model.fake) as openai_url:
        env = {
            "API_KEY": KEY,
            "OPENAI_API_KEY": MODEL_KEY,
            "OPENAI_BASE_URL": openai_url,
            "AGENT_MODEL": MODEL,
            "AGENT_CONFIRM_TOOLS": "get_stock_price",
            "RATE_LIMIT_PER_MINUTE": "1000",
        }
        with server_processes(database_dsn, [log], **env) as [url]:
            yield url, model


def user(text: str) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": text}]}


async def done(value: Any) -> Any:
    """The SDK call's answer: awaited for the async client, as is for the sync one."""
    return await value if inspect.isawaitable(value) else value


async def parts(stream: Any) -> list[Any]:
    if hasattr(stream, "__aiter__"):
        return [part async for part in stream]
    return list(stream)


def contents(values: dict[str, Any]) -> list[tuple[str, str]]:
    return [(m["type"], m["content"]) for m in values["messages"]]


async def first_parts(stream: Any, n: int) -> list[Any]:
    """The first `n` parts of a stream, then the connection dropped."""
    got: list[Any] = []
    if hasattr(stream, "__aiter__"):
        async for part in stream:
            got.append(part)
            if len(got) == n:
                break
        await stream.aclose()
        return got
    for part in stream:
        got.append(part)
        if len(got) == n:
            break
    stream.close()
    return got


async def first_part(stream: Any, wanted: Callable[[Any], bool]) -> Any:
    """The first part of a stream that `wanted` accepts, then the connection dropped."""
    if hasattr(stream, "__aiter__"):
        async for part in stream:
            if wanted(part):
                await stream.aclose()
                return part
    else:
        for part in stream:
            if wanted(part):
                stream.close()
                return part
    raise AssertionError("the stream ended without the part")


async def settled(client: Any, thread_id: str, run_id: str) -> dict[str, Any]:
    """The background run once it has ended (the SDK's `get`, asked until then)."""
    deadline = time.monotonic() + 60
    while True:
        run = await done(client.runs.get(thread_id, run_id))
        if run["status"] not in ("pending", "running"):
            return run
        assert time.monotonic() < deadline, run
        await asyncio.sleep(0.05)


@pytest.mark.parametrize("kind", ["async", "sync"])
async def test_the_python_sdk_drives_a_thread_end_to_end(
    server: str, held_server: tuple[str, HeldModel], kind: str
) -> None:
    sdk = get_client if kind == "async" else get_sync_client
    client: Any = sdk(url=server, api_key=KEY)
    held: Any = sdk(url=held_server[0], api_key=KEY)
    [assistant] = await done(client.assistants.search(graph_id="vera"))
    tag = str(uuid.uuid4())
    thread = await done(client.threads.create(metadata={"scenario": tag}))
    tid = thread["thread_id"]

    # A tool turn, streamed in every mode at once.
    streamed = await parts(
        client.runs.stream(
            tid, assistant["assistant_id"], input=user("Weather in Oslo?"), stream_mode=MODES
        )
    )
    events = [part.event for part in streamed]
    assert events[0] == "metadata" and {"values", "updates", "messages"} <= set(events)
    updates = [part.data for part in streamed if part.event == "updates"]
    called = [u["model"]["messages"][0] for u in updates if "model" in u]
    assert called[0]["tool_calls"][0]["name"] == "get_weather"
    assert any("tools" in u and u["tools"]["messages"][0]["type"] == "tool" for u in updates)
    chunks = [part.data for part in streamed if part.event == "messages"]
    assert all(len(chunk) == 2 and "langgraph_node" in chunk[1] for chunk in chunks)
    final = [part.data for part in streamed if part.event == "values"][-1]
    assert [t for t, _ in contents(final)] == ["human", "ai", "tool", "ai"]
    answer = final["messages"][-1]["content"]
    assert "Oslo" in answer and "".join(c[0]["content"] for c in chunks).endswith(answer)

    # State and history agree with what streamed.
    state = await done(client.threads.get_state(tid))
    assert state["values"] == final and state["next"] == []
    history = await done(client.threads.get_history(tid, limit=100))
    assert history[0]["checkpoint_id"] == state["checkpoint_id"]
    first_turn_end = state["checkpoint_id"]

    # A second turn, then a fork from the end of the first: the fork does not hold it.
    await done(client.runs.wait(tid, assistant["assistant_id"], input=user("My name is Ana.")))
    forked = await done(
        client.runs.wait(
            tid, "vera", input=user("What is the weather in Lima?"), checkpoint_id=first_turn_end
        )
    )
    assert [c for _, c in contents(forked)][:1] == ["Weather in Oslo?"]
    assert "My name is Ana." not in [c for _, c in contents(forked)]
    assert forked["messages"][4]["content"] == "What is the weather in Lima?"

    # update_state as the model: the note is the state's last message.
    written = await done(
        client.threads.update_state(
            tid, {"messages": [{"type": "ai", "content": "a note"}]}, as_node="model"
        )
    )
    noted = await done(client.threads.get_state(tid))
    assert noted["checkpoint_id"] == written["checkpoint"]["checkpoint_id"]
    assert contents(noted["values"])[-1] == ("ai", "a note")

    # A tool that needs approval pauses the run; Command(resume) goes on.
    paused = await done(client.runs.wait(tid, "vera", input=user("What is the price of AAPL?")))
    waiting = await done(client.threads.get_state(tid))
    assert waiting["next"] == ["approve"] and waiting["interrupts"], waiting
    assert (await done(client.threads.get(tid)))["status"] == "interrupted"
    assert contents(paused)[-1][0] == "ai"
    resumed = await done(client.runs.wait(tid, "vera", command={"resume": {"approved": True}}))
    tools = [m for m in resumed["messages"] if m["type"] == "tool"]
    assert tools[-1]["name"] == "get_stock_price" and resumed["messages"][-1]["type"] == "ai"
    assert (await done(client.threads.get(tid)))["status"] == "idle"

    # interrupt_before stops ahead of the tools; a run without input goes on.
    await done(
        client.runs.wait(tid, "vera", input=user("Weather in Rome?"), interrupt_before=["tools"])
    )
    assert (await done(client.threads.get_state(tid)))["next"] == ["tools"]
    went_on = await done(client.runs.wait(tid, "vera", input=None))
    assert "Rome" in went_on["messages"][-1]["content"]

    # A background run, followed to its end.
    run = await done(client.runs.create(tid, "vera", input=user("Weather in Paris?")))
    assert run["status"] in ("pending", "running") and run["thread_id"] == tid
    ended = await settled(client, tid, run["run_id"])
    assert ended["status"] == "success"
    after = await done(client.threads.get_state(tid))
    assert "Paris" in after["values"]["messages"][-1]["content"]
    # join_stream, dropped after two parts and joined again after the last id it got:
    # nothing lost, nothing doubled, in order.
    joined = await done(
        client.runs.create(tid, "vera", input=user("Weather in Madrid?"), stream_mode=MODES)
    )
    whole = await parts(client.runs.join_stream(tid, joined["run_id"]))
    head = await first_parts(client.runs.join_stream(tid, joined["run_id"]), 2)
    rest = await parts(client.runs.join_stream(tid, joined["run_id"], last_event_id=head[-1].id))
    assert [(p.id, p.event, p.data) for p in head + rest] == [
        (p.id, p.event, p.data) for p in whole
    ]
    assert whole[0].event == "metadata" and len(whole) > 4
    assert "Madrid" in [p.data for p in whole if p.event == "values"][-1]["messages"][-1]["content"]
    runs = await done(client.runs.list(tid, limit=100))
    assert len(runs) == 9 and runs[0]["run_id"] == joined["run_id"]  # newest first
    assert runs[1]["run_id"] == run["run_id"]
    assert {r["status"] for r in runs} == {"success", "interrupted"}

    # A background run cancelled in its model call, then one rolled back.
    await cancel_mid_turn(held, held_server[1], tid)

    # The thread is a Vera session, found by search; a copy holds the same state.
    found = await done(client.threads.search(metadata={"scenario": tag}))
    assert [t["thread_id"] for t in found] == [tid]
    async with httpx.AsyncClient(base_url=server, headers={"X-API-Key": KEY}) as http:
        listed = (await http.get("/sessions")).json()
    assert tid in [s["session_id"] for s in listed["sessions"]]
    copy = await done(client.threads.copy(tid))
    copied = await done(client.threads.get_state(copy["thread_id"]))
    assert copied["values"] == (await done(client.threads.get_state(tid)))["values"]

    for doomed in (copy["thread_id"], tid):
        await done(client.threads.delete(doomed))
        with pytest.raises(NotFoundError):
            await done(client.threads.get(doomed))
    if kind == "async":
        await client.http.client.aclose()
        await held.http.client.aclose()


async def cancel_mid_turn(client: Any, model: HeldModel, tid: str) -> None:
    """`interrupt`: the run ends `interrupted` with each step it finished stored (though it
    asked `durability="exit"`: runs are always durable), the thread is free and the next
    run goes on from there. `rollback`: the run and what it stored are gone."""
    bergen = Reply(tool_calls=[("call_bergen", "get_weather", '{"city": "Bergen"}')])
    # The answer stalls after its first pieces, its connection open: the run is mid-turn.
    model.fake.add(bergen, Reply(text="Drizzle and grey skies", pieces=4, stall_after=3))
    run = await done(
        client.runs.create(
            tid, "vera", input=user("Weather in Bergen?"), stream_mode=MODES, durability="exit"
        )
    )
    half = await first_part(
        client.runs.join_stream(tid, run["run_id"]),
        lambda part: part.event == "messages" and part.data[0]["content"] == "Drizzl",
    )
    assert half.data[1]["langgraph_node"] == "model"
    assert (await done(client.runs.get(tid, run["run_id"])))["status"] == "running"
    ended = await done(client.runs.cancel(tid, run["run_id"], wait=True, action="interrupt"))
    # The run's last event, as langgraph-api answers a wait on a cancelled run.
    assert ended["__error__"]["error"] == "UserInterrupt", ended
    stopped = await done(client.runs.get(tid, run["run_id"]))
    assert stopped["status"] == "interrupted"
    assert stopped["kwargs"]["durability"] == "sync"  # what the run used
    assert await done(client.runs.join(tid, run["run_id"])) == ended
    state = await done(client.threads.get_state(tid))
    assert state["next"] == ["model"]
    tail = state["values"]["messages"][-3:]
    assert [m["type"] for m in tail] == ["human", "ai", "tool"]
    assert tail[1]["tool_calls"][0]["id"] == "call_bergen" and "Bergen" in tail[2]["content"]
    assert "Drizz" not in str(state["values"])  # nothing of the answer it was streaming
    # Not busy: `interrupted`, as langgraph-api marks a thread with steps left.
    assert (await done(client.threads.get(tid)))["status"] == "interrupted"
    model.fake.add(Reply(text="Bergen is rainy."))
    went_on = await done(client.runs.wait(tid, "vera", input=None))
    assert went_on["messages"][-1]["content"] == "Bergen is rainy."
    assert (await done(client.threads.get(tid)))["status"] == "idle"

    before = await done(client.threads.get_state(tid))
    history = await done(client.threads.get_history(tid, limit=1000))
    with model.holding([], hold=1):
        doomed = await done(client.runs.create(tid, "vera", input=user("Weather in Lyon?")))
        assert await asyncio.to_thread(model.asked.wait, 60)
        assert "Lyon" in str((await done(client.threads.get_state(tid)))["values"])
        values = await done(client.runs.cancel(tid, doomed["run_id"], wait=True, action="rollback"))
    with pytest.raises(NotFoundError):
        await done(client.runs.get(tid, doomed["run_id"]))
    assert values == before["values"]
    assert await done(client.threads.get_state(tid)) == before
    assert await done(client.threads.get_history(tid, limit=1000)) == history
    assert (await done(client.threads.get(tid)))["status"] == "idle"
