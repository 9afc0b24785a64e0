"""One scenario of the LangGraph SDK's thread calls, played against Vera or `langgraph dev`
(`turn` runs one chat turn on a thread: `/chat` on Vera, `runs.wait` on `langgraph dev`),
returning every answer by the call's name."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from langgraph_sdk.client import LangGraphClient

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
