"""A tool that ran never runs again (issue 23, points 1 and 2), against two real
`python -m src.api` workers on one database, the model and the tools' APIs faked on
loopback and every tool call counted at the tool's API.

- A worker SIGKILLed right after its client received `tool_result`, the same `turn_id`
  retried on the other worker: the retry reuses the stored result. The tools' writes are
  held up by a lock on the lease row (taken while the tools work) so that a result sent
  before it is stored would be caught: the worker dies with its writes still waiting.
- A worker frozen (SIGSTOP) past its lease with its model step's write in flight (the
  database commits it while the worker is frozen, as in a network partition), the turn
  taken over and finished by the other worker, then SIGCONT: the frozen worker starts no
  tool.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from tests.api_harness import Event, wait_until
from tests.fake_openai import FakeOpenAI, Reply, chat_openai_environment
from tests.fake_tools import FakeToolApis
from tests.processes import Worker, workers

SESSIONS = 6
LEASE_SECONDS = "2"
# How long a result that is not stored yet has to show up at the client (it must not):
# a bound on a wait for what should never come, never on what the test waits for.
UNSTORED_WINDOW = 1.0

WAITING_WRITES = """
SELECT count(*) FROM pg_stat_activity
WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE $1"""
RUNNING_WRITES = """
SELECT count(*) FROM pg_stat_activity
WHERE datname = current_database() AND state = 'active' AND query LIKE '%vera_put%'
  AND pid <> pg_backend_pid()"""
END_WAITING_WRITES = """
SELECT pg_terminate_backend(pid) FROM pg_stat_activity
WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%vera_put%'"""
LOCK_LEASE = "SELECT 1 FROM turn_leases WHERE session_id = $1 FOR UPDATE"


class EventStream:
    """A `POST /chat` read as it arrives: its events in a queue, None once it ends (or
    its worker died)."""

    def __init__(self, url: str, body: dict[str, Any]) -> None:
        self.events: asyncio.Queue[Event | None] = asyncio.Queue()
        self.seen: list[Event] = []
        self.status = 0
        self.task = asyncio.create_task(self._read(url, body))

    async def _read(self, url: str, body: dict[str, Any]) -> None:
        try:
            async with (
                httpx.AsyncClient(base_url=url, timeout=120) as client,
                client.stream("POST", "/chat", json=body) as response,
            ):
                self.status = response.status_code
                if response.status_code != 200:
                    return
                fields: dict[str, str] = {}
                async for line in response.aiter_lines():
                    if line:
                        name, _, value = line.partition(":")
                        fields[name] = value[1:] if value.startswith(" ") else value
                    elif "event" in fields:
                        event = Event(fields.get("id"), fields["event"], json.loads(fields["data"]))
                        await self.events.put(event)
                        fields = {}
        except httpx.TransportError:
            pass  # the worker died
        finally:
            await self.events.put(None)

    async def until(self, name: str) -> Event | None:
        """The next event called `name` (None: the stream ended first)."""
        while (event := await self.events.get()) is not None:
            self.seen.append(event)
            if event.event == name:
                return event
        return None

    async def rest(self) -> list[Event]:
        """Every event up to the stream's end."""
        while (event := await self.events.get()) is not None:
            self.seen.append(event)
        await self.task
        return self.seen


def both_tools(n: int) -> Reply:
    return Reply(
        tool_calls=[
            (f"call_w{n}", "get_weather", '{"city": "Oslo"}'),
            (f"call_s{n}", "get_stock_price", '{"ticker": "AAPL"}'),
        ]
    )


async def retried(worker: Worker, body: dict[str, Any]) -> list[Event]:
    """The turn sent again to `worker` until its session's lease let it (409 meanwhile)."""
    events: list[Event] = []

    async def accepted() -> bool:
        stream = EventStream(worker.url, body)
        events[:] = await stream.rest()
        assert stream.status in (200, 409), stream.status
        return stream.status == 200

    await wait_until(accepted, limit=60)
    return events


@contextlib.asynccontextmanager
async def services(tmp_path: Path, database_dsn: str) -> AsyncIterator[Any]:
    fake, tools = FakeOpenAI(), FakeToolApis()
    async with fake.serve() as openai_url, tools.serve() as tool_env:
        env = {
            **tool_env,
            **chat_openai_environment(openai_url),
            "SESSION_LEASE_SECONDS": LEASE_SECONDS,
            "RATE_LIMIT_PER_MINUTE": "10000",
        }
        logs = [tmp_path / "a.log", tmp_path / "b.log"]
        with workers(database_dsn, logs, **env) as pair:
            lock, watch = await asyncpg.connect(database_dsn), await asyncpg.connect(database_dsn)
            try:
                yield fake, tools, pair, lock, watch
            finally:
                await lock.close()
                await watch.close()


def tool_runs(tools: FakeToolApis, before: dict[str, int]) -> tuple[int, int]:
    weather, stocks = (tools.calls[t] - before.get(t, 0) for t in ("weather", "stocks"))
    return weather, stocks


async def test_a_result_the_client_got_is_stored_and_reused_after_a_kill(
    database_dsn: str, tmp_path: Path
) -> None:
    async with services(tmp_path, database_dsn) as (fake, tools, pair, lock, watch):
        runs = []
        for n in range(SESSIONS):
            victim, other = pair[n % 2], pair[(n + 1) % 2]
            sid = uuid.uuid4()
            body = {"session_id": str(sid), "message": "Weather in Oslo, price of AAPL?"}
            body["turn_id"] = f"kill-{n}"
            fake.add(both_tools(n), Reply(text="Snow in Oslo; AAPL at 187.5."))
            before = dict(tools.calls)
            held = lock.transaction()

            async def hold_the_writes(sid: uuid.UUID = sid, held: Any = held) -> None:
                if tools.gate is not None:  # once: the first call of the two
                    tools.gate = None
                    await held.start()
                    await lock.execute(LOCK_LEASE, sid)

            tools.gate = hold_the_writes
            stream = EventStream(victim.url, body)

            async def writes_wait() -> bool:
                return bool(await watch.fetchval(WAITING_WRITES, "%vera_put%"))

            await wait_until(writes_wait)
            try:
                early = await asyncio.wait_for(stream.until("tool_result"), UNSTORED_WINDOW)
            except TimeoutError:
                early = None
            if early is not None:  # sent before stored: the worker dies, its writes too
                victim.kill()
                await watch.execute(END_WAITING_WRITES)
                await held.rollback()
            else:
                await held.rollback()
                assert await stream.until("tool_result") is not None, stream.seen
                victim.kill()
            victim.launch()  # back for the next session, starting while this one ends
            other.ready()
            events = await retried(other, body)
            assert events[-1].event == "done", events
            runs.append(tool_runs(tools, before))
    assert runs == [(1, 1)] * SESSIONS, f"(weather, stock) calls per session: {runs}"
    assert tools.unkeyed == 0 and set(tools.keys.values()) == {1}, tools.keys


async def test_a_worker_frozen_past_its_lease_starts_no_tool(
    database_dsn: str, tmp_path: Path
) -> None:
    async with services(tmp_path, database_dsn) as (fake, tools, pair, lock, watch):
        runs, frozen_ends = [], []
        for n in range(SESSIONS):
            frozen, other = pair[n % 2], pair[(n + 1) % 2]
            sid = uuid.uuid4()
            body = {"session_id": str(sid), "message": "Weather in Oslo, price of AAPL?"}
            body["turn_id"] = f"freeze-{n}"
            fake.add(both_tools(n), Reply(text="Snow in Oslo; AAPL at 187.5."))
            before = dict(tools.calls)
            held = lock.transaction()

            async def hold_the_write(sid: uuid.UUID = sid, held: Any = held) -> None:
                if fake.gate is not None:  # once: the frozen worker's model call
                    fake.gate = None
                    await held.start()
                    await lock.execute(LOCK_LEASE, sid)

            fake.gate = hold_the_write
            stream = EventStream(frozen.url, body)

            async def checkpoint_waits() -> bool:
                return bool(await watch.fetchval(WAITING_WRITES, "%vera_put_checkpoint%"))

            async def writes_done() -> bool:
                return not await watch.fetchval(RUNNING_WRITES)

            # The model answered; its step's write is in the database's hands: freeze the
            # worker, and let the database commit it meanwhile.
            await wait_until(checkpoint_waits)
            frozen.signal(signal.SIGSTOP)
            try:
                await held.rollback()
                await wait_until(writes_done)
                events = await retried(other, body)  # once the frozen one's lease expired
                assert events[-1].event == "done", events
            finally:
                frozen.signal(signal.SIGCONT)
            frozen_ends.append((await stream.rest())[-1].event)
            runs.append(tool_runs(tools, before))
    assert runs == [(1, 1)] * SESSIONS, f"(weather, stock) calls per session: {runs}"
    assert frozen_ends == ["error"] * SESSIONS, frozen_ends
