"""A run whose worker dies is taken over by a live worker (issue 26): two `python -m src.api`
processes on one database, the real `ChatOpenAI` against a scripted OpenAI-protocol server
that holds its answer until the test lets it go. Worker A is SIGKILLed while its run waits
on the model; once A's lease of the thread expires, worker B resumes the run from its last
checkpoint (as a retried `/chat` turn resumes), so it ends exactly once: `join` and
`join_stream` end with its values, the user message is stored once, cancel says it ended.
A run A queued behind it is started by B too, in its turn."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient
from langgraph_sdk.schema import Run

from tests.agent_server_runs import user
from tests.api_harness import wait_until
from tests.fake_openai import FakeOpenAI, Reply, chat_openai_environment
from tests.fake_tools import FakeToolApis
from tests.processes import Worker, stored, workers

KEY = "run-recovery-key-0123456789abcdefghij"
LEASE_SECONDS = "2"


@dataclass
class Services:
    """The scripted model (its call number `hold_call` held: `asked` is set once it came,
    and it answers once `release` is), the tools' APIs, two workers using them, an SDK
    client of each and a thread made on the first."""

    model: FakeOpenAI
    tools: FakeToolApis
    asked: asyncio.Event
    release: asyncio.Event
    workers: list[Worker]
    clients: list[LangGraphClient]
    thread: str

    async def held_run_on_a(self, text: str, *replies: Reply) -> Run:
        """A run of `text` created on worker A (the model to answer `replies`), once its
        held model call came."""
        self.model.add(*replies)
        run = await self.clients[0].runs.create(self.thread, "vera", input=user(text))
        await self.asked.wait()
        return run

    def kill_a(self, *replies: Reply) -> None:
        """SIGKILL worker A while the model holds its call, then let the model answer
        `replies` (after what was queued before) without holding any call."""
        self.workers[0].kill()
        self.model.gate = None
        self.model.add(*replies)
        self.release.set()


@contextlib.asynccontextmanager
async def services(
    database_dsn: str, tmp_path: Path, hold_call: int = 1
) -> AsyncIterator[Services]:
    model, tools, asked, release = FakeOpenAI(), FakeToolApis(), asyncio.Event(), asyncio.Event()

    async def hold() -> None:
        if len(model.received) == hold_call:
            asked.set()
            await release.wait()

    model.gate = hold
    async with model.serve() as url, tools.serve() as tool_env:
        env = {
            **tool_env,
            **chat_openai_environment(url),
            "API_KEY": KEY,
            "RATE_LIMIT_PER_MINUTE": "10000",
            "SESSION_LEASE_SECONDS": LEASE_SECONDS,
        }
        logs = [tmp_path / "a.log", tmp_path / "b.log"]
        with workers(database_dsn, logs, **env) as pair:
            clients = [get_client(url=w.url, api_key=KEY, timeout=120) for w in pair]
            try:
                tid = (await clients[0].threads.create())["thread_id"]
                yield Services(model, tools, asked, release, pair, clients, tid)
            finally:
                release.set()
                for client in clients:
                    await client.http.client.aclose()


async def test_a_run_whose_worker_is_killed_is_finished_once_by_the_other_worker(
    database_dsn: str, tmp_path: Path
) -> None:
    async with services(database_dsn, tmp_path) as up:
        b, (on_a, on_b), tid = up.workers[1], up.clients, up.thread
        run = await up.held_run_on_a("Will it survive?", Reply(text="the lost answer"))
        queued = await on_a.runs.create(
            tid, "vera", input=user("And the next one?"), multitask_strategy="enqueue"
        )
        assert queued["status"] == "pending"
        up.kill_a(Reply(text="the answer"), Reply(text="the next answer"))

        parts = [part async for part in on_b.runs.join_stream(tid, run["run_id"])]
        values = await on_b.runs.join(tid, run["run_id"])
        assert values["messages"][-1]["content"] == "the answer"
        assert parts[-1].event == "values", parts
        assert parts[-1].data["messages"][-1]["content"] == "the answer"
        ended = await on_b.runs.get(tid, run["run_id"])
        assert ended["status"] == "success", ended
        with pytest.raises(httpx.HTTPStatusError) as gone:  # it ended: nothing to cancel
            await on_b.runs.cancel(tid, run["run_id"])
        assert gone.value.response.status_code == 404

        # The queued run A accepted starts on B in its turn, after the first.
        await on_b.runs.join(tid, queued["run_id"])
        assert (await on_b.runs.get(tid, queued["run_id"]))["status"] == "success"
        assert await stored(b.url, KEY, tid) == [
            ("user", "Will it survive?"),
            ("assistant", "the answer"),
            ("user", "And the next one?"),
            ("assistant", "the next answer"),
        ]
        state = await on_b.threads.get_state(tid)
        ids = [m["id"] for m in state["values"]["messages"]]
        assert len(ids) == len(set(ids)) == 4


async def test_a_queued_run_whose_worker_died_is_started_by_the_other_worker(
    database_dsn: str, tmp_path: Path
) -> None:
    async with services(database_dsn, tmp_path) as up:
        b, (on_a, on_b), tid = up.workers[1], up.clients, up.thread
        # A /chat turn on B holds the thread while A queues a run behind it.
        up.model.add(Reply(text="the chat answer"))
        async with httpx.AsyncClient(base_url=b.url, headers={"X-API-Key": KEY}) as http:
            turn = asyncio.create_task(
                http.post(
                    "/chat/complete",
                    json={"session_id": tid, "message": "a slow question"},
                    timeout=120,
                )
            )
            await up.asked.wait()
            queued = await on_a.runs.create(
                tid, "vera", input=user("Queued on A"), multitask_strategy="enqueue"
            )
            up.kill_a(Reply(text="the queued answer"))
            assert (await turn).status_code == 200

        async def ended() -> bool:
            run = await on_b.runs.get(tid, queued["run_id"])
            return run["status"] not in ("pending", "running")

        await wait_until(ended, limit=60)
        assert (await on_b.runs.get(tid, queued["run_id"]))["status"] == "success"
        assert await stored(b.url, KEY, tid) == [
            ("user", "a slow question"),
            ("assistant", "the chat answer"),
            ("user", "Queued on A"),
            ("assistant", "the queued answer"),
        ]


async def test_a_run_killed_after_its_tools_ran_does_not_run_them_again(
    database_dsn: str, tmp_path: Path
) -> None:
    async with services(database_dsn, tmp_path, hold_call=2) as up:
        on_b, tid = up.clients[1], up.thread
        tools = Reply(
            tool_calls=[
                ("call_w", "get_weather", '{"city": "Oslo"}'),
                ("call_s", "get_stock_price", '{"ticker": "AAPL"}'),
            ]
        )
        lost = Reply(text="the lost answer")
        # Both tools ran once the model's next call is held.
        run = await up.held_run_on_a("Weather in Oslo, AAPL?", tools, lost)
        up.kill_a(Reply(text="Snow in Oslo; AAPL at 187.5."))

        values = await on_b.runs.join(tid, run["run_id"])
        assert values["messages"][-1]["content"] == "Snow in Oslo; AAPL at 187.5."
        assert (await on_b.runs.get(tid, run["run_id"]))["status"] == "success"
        assert (up.tools.calls["weather"], up.tools.calls["stocks"]) == (1, 1)
        assert up.tools.unkeyed == 0 and set(up.tools.keys.values()) == {1}, up.tools.keys
        kinds = [m["type"] for m in values["messages"]]
        assert kinds == ["human", "ai", "tool", "tool", "ai"], kinds
