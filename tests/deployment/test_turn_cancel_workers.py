"""Stopping a turn through the real server (issue 25, point 1): two `python -m src.api`
processes on one database; a turn running on one is stopped by a request to the other,
mid-answer and mid-tool (the weather tool's HTTPS goes to a local proxy that never
answers), and the next turn's model request passes the fake OpenAI server's check that
every tool call is answered."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

import httpx

from tests.api_harness import Event
from tests.fake_openai import KEY, MODEL, FakeOpenAI, Reply, answer
from tests.processes import server_processes
from tests.support import free_port

LONG = "".join(f"word{i} " for i in range(400))


class StallingProxy:
    """An HTTP proxy on 127.0.0.1 that reads each CONNECT and never answers it."""

    def __init__(self) -> None:
        self.asked = asyncio.Event()
        self.targets: list[str] = []

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        line = await reader.readline()
        self.targets.append(line.decode(errors="replace").split(" ")[1:2][0])
        self.asked.set()
        await reader.read()  # until the client gives up
        writer.close()

    async def start(self, port: int) -> asyncio.Server:
        return await asyncio.start_server(self._client, "127.0.0.1", port)


async def stream(url: str, body: dict[str, Any], first: asyncio.Event) -> list[Event]:
    """POST /chat to `url`, the whole stream; `first` is set at the first token."""
    events: list[Event] = []
    async with (
        httpx.AsyncClient(base_url=url, timeout=60) as client,
        client.stream("POST", "/chat", json=body) as response,
    ):
        assert response.status_code == 200
        name = ""
        async for line in response.aiter_lines():
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                events.append(Event(None, name, json.loads(line[6:])))
                if name == "token":
                    first.set()
    return events


async def cancel(url: str, sid: str, turn_id: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        response = await client.post(f"/sessions/{sid}/turns/{turn_id}/cancel")
    assert response.status_code == 200, response.text
    return response.json()


async def messages(url: str, sid: str) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        return (await client.get(f"/sessions/{sid}/messages")).json()["messages"]


async def test_a_turn_is_stopped_from_the_other_worker_mid_answer_and_mid_tool(
    database_dsn: str, tmp_path: Path
) -> None:
    fake = FakeOpenAI(
        Reply(text=LONG, pieces=400, every=0.02),
        Reply(text="Sure."),
        Reply(tool_calls=[("call_1", "get_weather", '{"city": "Paris"}')]),
        Reply(text="As you wish."),
    )
    proxy, proxy_port = StallingProxy(), free_port()
    server = await proxy.start(proxy_port)
    try:
        async with fake.serve() as openai_url:
            env = {
                "OPENAI_API_KEY": KEY,
                "OPENAI_BASE_URL": openai_url,
                "AGENT_MODEL": MODEL,
                "WEATHER_PROVIDER": "open-meteo",
                "TOOL_TIMEOUT_SECONDS": "60",
                "HTTPS_PROXY": f"http://127.0.0.1:{proxy_port}",
                "NO_PROXY": "127.0.0.1,localhost",
            }
            logs = [tmp_path / "a.log", tmp_path / "b.log"]
            with server_processes(database_dsn, logs, **env) as [running_on, other]:
                # Mid-answer.
                sid, turn_id = str(uuid.uuid4()), "story"
                body = {"session_id": sid, "message": "A long story", "turn_id": turn_id}
                first = asyncio.Event()
                streaming = asyncio.create_task(stream(running_on, body, first))
                await asyncio.wait_for(first.wait(), 30)
                assert (await cancel(other, sid, turn_id))["status"] == "cancelled"
                events = await streaming
                assert events[-1].event == "cancelled"
                seen = answer(events)
                assert 0 < len(seen) < len(LONG)
                kept = (await messages(other, sid))[-1]
                assert kept["content"] == seen
                assert kept["data"]["response_metadata"]["stopped"] is True
                done = await stream(other, {"session_id": sid, "message": "Shorter"}, first)
                assert done[-1].event == "done"

                # Mid-tool.
                sid, turn_id = str(uuid.uuid4()), "weather"
                body = {"session_id": sid, "message": "Weather in Paris?", "turn_id": turn_id}
                streaming = asyncio.create_task(stream(running_on, body, asyncio.Event()))
                await asyncio.wait_for(proxy.asked.wait(), 30)  # the tool is waiting
                assert proxy.targets[0].endswith("open-meteo.com:443")
                assert (await cancel(other, sid, turn_id))["status"] == "cancelled"
                events = await streaming
                assert [e.event for e in events] == ["session", "tool_call", "cancelled"]
                stored = await messages(other, sid)
                assert [m["role"] for m in stored] == ["user", "assistant", "tool"]
                assert stored[-1]["data"]["response_metadata"]["stopped"] is True
                body = {"session_id": sid, "message": "Never mind"}
                done = await stream(running_on, body, asyncio.Event())
                assert done[-1].event == "done", done
                assert [m["tool_call_id"] for m in fake.tool_results(-1)] == ["call_1"]
                assert fake.rejected == []
    finally:
        server.close()
