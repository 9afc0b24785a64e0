"""Scenarios of the LangGraph SDK's calls, played against Vera or `langgraph dev`, returning
every answer by the call's name: the thread calls (`turn` runs one chat turn on a thread:
`/chat` on Vera, `runs.wait` on `langgraph dev`), the run calls and the rest of the
surface (subgraphs, threadless runs, deletes and bulk cancels)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from langgraph_sdk.client import LangGraphClient
from langgraph_sdk.errors import APIStatusError

from tests.agent_runs import EVERY_STREAM_MODE, STREAM_MODES, TOOL_TURN, streaks

Turn = Callable[[str, str], Awaitable[None]]


async def thread_calls(client: LangGraphClient, turn: Turn) -> dict[str, Any]:
    """create -> get -> turn -> state/history -> search -> update -> state at a checkpoint
    -> update_state as a node -> copy -> delete; the answers by call."""
    got: dict[str, Any] = {}
    got["assistants.search"] = await client.assistants.search(graph_id="vera")
    assistant_id = got["assistants.search"][0]["assistant_id"]
    got["assistants.get"] = await client.assistants.get(assistant_id)
    got["assistants.get_graph"] = await client.assistants.get_graph(assistant_id)
    got["assistants.get_schemas"] = await client.assistants.get_schemas(assistant_id)
    got["info"] = await client.http.get("/info")
    got["ok"] = await client.http.get("/ok")
    created = got["threads.create"] = await client.threads.create(metadata={"topic": "sdk"})
    thread_id = created["thread_id"]
    got["threads.get (new)"] = await client.threads.get(thread_id)
    got["threads.get_state (new)"] = await client.threads.get_state(thread_id)
    got["threads.get_history (new)"] = await client.threads.get_history(thread_id)
    await turn(thread_id, "What's the weather in Paris?")
    got["threads.get"] = await client.threads.get(thread_id)
    got["threads.get_state"] = await client.threads.get_state(thread_id)
    history = got["threads.get_history"] = await client.threads.get_history(thread_id, limit=3)
    got["threads.search"] = await client.threads.search(metadata={"topic": "sdk"}, limit=5)
    got["threads.update"] = await client.threads.update(thread_id, metadata={"stage": "two"})
    earlier = history[-1]["checkpoint"]
    got["threads.get_state (checkpoint)"] = await client.threads.get_state(
        thread_id, checkpoint=earlier
    )
    got["threads.get_state (checkpoint_id)"] = await client.threads.get_state(
        thread_id, checkpoint_id=earlier["checkpoint_id"]
    )
    got["threads.update_state"] = await client.threads.update_state(
        thread_id, {"messages": [{"role": "user", "content": "and Rome?"}]}, as_node="model"
    )
    got["threads.copy"] = await client.threads.copy(thread_id)
    got["threads.delete"] = await client.threads.delete(thread_id)
    await client.threads.delete(got["threads.copy"]["thread_id"])
    return got


async def run_calls(client: LangGraphClient, served: frozenset[str]) -> dict[str, Any]:
    """On a new thread: the tool turn streamed -> a `runs.wait` turn -> a background run,
    joined -> that run read back -> the thread's runs; only the calls in `served` (names
    of `RUN_ROUTES`). The stream as {"names": its events' streaks, "event <name>": its
    events' data}, a `messages` event's (chunk, metadata) as a dict."""
    got: dict[str, Any] = {}
    thread_id = (await client.threads.create())["thread_id"]
    if "runs.stream" in served:
        stream: dict[str, Any] = {"names": []}
        parts = client.runs.stream(thread_id, "vera", input=TOOL_TURN, stream_mode=STREAM_MODES)
        async for part in parts:
            stream["names"].append(part.event)
            data = comparable(part.event, part.data)
            stream.setdefault(f"event {part.event}", []).append(data)
        stream["names"] = streaks(stream["names"])
        got["runs.stream"] = stream
    if "runs.wait" in served:
        got["runs.wait"] = await client.runs.wait(thread_id, "vera", input=text_input("And Rome?"))
    if "runs.create" in served:
        run = got["runs.create"] = await client.runs.create(
            thread_id, "vera", input=text_input("And Oslo?")
        )
        if "runs.join" in served:
            got["runs.join"] = await client.runs.join(thread_id, run["run_id"])
        if "runs.get" in served:
            got["runs.get"] = await client.runs.get(thread_id, run["run_id"])
    if "runs.list" in served:
        got["runs.list"] = await client.runs.list(thread_id)
    if "runs.join" in served or "runs.create" not in served:  # else a run may still run
        await client.threads.delete(thread_id)
    return got


def comparable(event: str, data: Any) -> Any:
    """An event's data with the parts keyed by ids made comparable: a `messages` event's
    (chunk, metadata) as a dict, a `messages/metadata` event's {id: ...} as a list."""
    if event == "messages" or event.startswith("messages|"):
        return {"chunk": data[0], "metadata": data[1]}
    if event == "messages/metadata":
        return [{"id": key, **value} for key, value in data.items()]
    return data


async def stream_mode_calls(client: LangGraphClient) -> dict[str, Any]:
    """The tool turn streamed in each stream mode (`EVERY_STREAM_MODE`), without and with
    subgraphs, each on a new thread: {"runs.stream <mode> (subgraphs=<b>)": {"names": its
    events' streaks, "event <name>": its events' data}}."""
    got: dict[str, Any] = {}
    for subgraphs in (False, True):
        for mode in EVERY_STREAM_MODE:
            thread_id = (await client.threads.create())["thread_id"]
            stream: dict[str, Any] = {"names": []}
            parts = client.runs.stream(
                thread_id, "vera", input=TOOL_TURN, stream_mode=mode, stream_subgraphs=subgraphs
            )
            async for part in parts:
                stream["names"].append(part.event)
                data = comparable(part.event, part.data)
                stream.setdefault(f"event {part.event}", []).append(data)
            stream["names"] = streaks(stream["names"])
            got[f"runs.stream {mode} (subgraphs={subgraphs})"] = stream
            await client.threads.delete(thread_id)
    return got


def text_input(text: str) -> dict[str, Any]:
    """A run's input of one user message."""
    return {"messages": [{"role": "user", "content": text}]}


async def status_of(call: Awaitable[Any]) -> int:
    """The HTTP status a call is answered with (200 for one that returned)."""
    try:
        await call
    except APIStatusError as exc:
        return exc.status_code
    return 200


async def surface_calls(client: LangGraphClient, assistant_id: str) -> dict[str, Any]:
    """The rest of what the SDK calls: an assistant's subgraphs; threadless runs (wait,
    stream, a background one kept and joined); a run deleted; bulk cancels; and, on a
    thread with metadata, a run with metadata and config (what each holds of which)."""
    got: dict[str, Any] = {}
    got["assistants.get_subgraphs"] = await client.assistants.get_subgraphs(assistant_id)
    got["assistants.get_subgraphs (recurse)"] = await client.assistants.get_subgraphs(
        assistant_id, namespace="model", recurse=True
    )
    got["runs.wait (threadless)"] = await client.runs.wait(None, "vera", input=TOOL_TURN)
    parts = client.runs.stream(None, "vera", input=TOOL_TURN, stream_mode=STREAM_MODES)
    got["runs.stream (threadless)"] = streaks([part.event async for part in parts])
    kept = got["runs.create (threadless)"] = await client.runs.create(
        None, "vera", input=text_input("Hi"), on_completion="keep"
    )
    await client.runs.join(kept["thread_id"], kept["run_id"])
    got["runs.get (threadless)"] = await client.runs.get(kept["thread_id"], kept["run_id"])
    got["threads.get (threadless)"] = await client.threads.get(kept["thread_id"])
    thread_id = (await client.threads.create(metadata={"who": "me"}))["thread_id"]
    config = {"configurable": {"x": 1}, "tags": ["a"]}
    await client.runs.wait(
        thread_id, "vera", input=text_input("Hi"), metadata={"m": 1}, config=config
    )
    got["runs.get (metadata)"] = (await client.runs.list(thread_id))[0]
    got["threads.get (after a run)"] = await client.threads.get(thread_id)
    got["threads.get_state (after a run)"] = await client.threads.get_state(thread_id)
    run_id = got["runs.get (metadata)"]["run_id"]
    got["runs.delete"] = await client.runs.delete(thread_id, run_id)
    got["runs.list (after delete)"] = await client.runs.list(thread_id)
    got["runs.delete (again)"] = await status_of(client.runs.delete(thread_id, run_id))
    got["runs.cancel_many (none running)"] = await status_of(
        client.runs.cancel_many(thread_id=thread_id, run_ids=[run_id])
    )
    got["runs.cancel_many (status and ids)"] = await status_of(
        client.runs.cancel_many(status="all", thread_id=thread_id)
    )
    for thread in (thread_id, kept["thread_id"]):
        await client.threads.delete(thread)
    return got
