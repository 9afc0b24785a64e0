"""The sweep of runs whose worker died (`run_recovery`), on a real database: which runs it
takes over and which queues it starts (`RunBook.orphaned`, `queue_heads`), that one worker
takes a run over once (`reclaim`), that a dead attempt can no longer record how the run
ended, and, on a real app, that a run whose end was never recorded, or that used up its
attempts, is ended by the sweep."""

from __future__ import annotations

import uuid

import asyncpg
import pytest
from langgraph_sdk.client import LangGraphClient

from src.agent.memory import PostgresMemoryStore
from src.api.agent_server.run_book import RunBook
from src.api.agent_server.run_recovery import MAX_ATTEMPTS
from tests.agent_server_runs import QUESTION, user
from tests.api_harness import wait_until
from tests.fakes import FakeModel

KEY = "sweep-key-0123456789abcdefghijklmnopq"
ASSISTANT = uuid.UUID(int=1)
LEASE = """
INSERT INTO turn_leases (session_id, run_id, expires_at)
VALUES ($1, $2, clock_timestamp() + make_interval(secs => $3))"""
STATUS = "UPDATE thread_runs SET status = $2 WHERE run_id = $1"


async def add_run(book: RunBook, thread: uuid.UUID, strategy: str, status: str) -> uuid.UUID:
    run_id = uuid.uuid4()
    await book.insert(run_id, thread, ASSISTANT, {}, {"input": None}, strategy)
    await book.store.run(lambda conn: conn.execute(STATUS, run_id, status))
    return run_id


async def test_the_sweep_takes_over_started_runs_of_free_threads_and_their_queues_after(
    store: PostgresMemoryStore, db: asyncpg.Connection
) -> None:
    book = RunBook(store)
    dead, live, busy = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    orphan = await add_run(book, dead, "reject", "running")
    behind = await add_run(book, dead, "enqueue", "pending")
    running = await add_run(book, live, "reject", "running")
    await db.execute(LEASE, live, running, 30.0)
    await add_run(book, live, "enqueue", "pending")
    expired = await add_run(book, busy, "enqueue", "running")
    await db.execute(LEASE, busy, expired, -1.0)  # its worker died a second ago
    mine = {dead, live, busy}

    orphans = [r for r in await book.orphaned(1000) if r["session_id"] in mine]
    assert {(r["run_id"], r["lease_id"], r["attempt"]) for r in orphans} == {
        (orphan, orphan, 1),
        (expired, expired, 1),
    }
    # A queue waits for the thread's started run, dead or alive, to end first.
    assert [r for r in await book.queue_heads(1000) if r["session_id"] in mine] == []
    assert await book.first_queued(dead) is None

    await book.end(dead, orphan, orphan, "success")
    heads = [r["run_id"] for r in await book.queue_heads(1000) if r["session_id"] in mine]
    assert heads == [behind]
    assert await book.first_queued(dead) == behind


async def test_a_run_is_taken_over_once_and_its_dead_attempt_records_nothing(
    store: PostgresMemoryStore, db: asyncpg.Connection
) -> None:
    book = RunBook(store)
    thread = uuid.uuid4()
    run_id = await add_run(book, thread, "reject", "running")
    first, second = uuid.uuid4(), uuid.uuid4()
    assert await book.reclaim(run_id, run_id, first) == 2
    assert await book.reclaim(run_id, run_id, second) is None  # the other worker: too late
    await db.execute(LEASE, thread, first, 30.0)

    await book.end(thread, run_id, run_id, "error")  # the dead attempt wakes up: fenced
    run = await book.get(thread, run_id)
    assert (run["status"], run["attempt"], run["lease_id"]) == ("running", 2, first)
    await book.drop(thread, run_id, run_id)
    assert (await book.get(thread, run_id))["status"] == "running"

    await book.end(thread, run_id, first, "success")
    assert (await book.get(thread, run_id))["status"] == "success"
    assert await db.fetchval("SELECT count(*) FROM turn_leases WHERE session_id = $1", thread) == 0
    assert await book.reclaim(run_id, first, second) is None  # ended: nothing to take over


@pytest.fixture
def api_key() -> str:
    return KEY


async def ran(sdk: LangGraphClient) -> tuple[str, str, dict]:
    """A new thread's run, waited for: (thread id, run id, its final values)."""
    tid = (await sdk.threads.create())["thread_id"]
    values = await sdk.runs.wait(tid, "vera", input=user("Hello"))
    return tid, (await sdk.runs.list(tid))[0]["run_id"], values


async def swept(sdk: LangGraphClient, tid: str, run_id: str) -> str:
    """The run's status once the sweep ended it."""

    async def ended() -> bool:
        return (await sdk.runs.get(tid, run_id))["status"] != "running"

    await wait_until(ended)
    return (await sdk.runs.get(tid, run_id))["status"]


async def test_a_run_whose_end_was_not_recorded_ends_success_without_running_again(
    sdk: LangGraphClient, model: FakeModel, db: asyncpg.Connection
) -> None:
    tid, run_id, values = await ran(sdk)
    calls = model.calls
    # Its worker died between its last checkpoint and recording its status.
    await db.execute(STATUS, uuid.UUID(run_id), "running")
    assert await swept(sdk, tid, run_id) == "success"
    assert model.calls == calls
    assert await sdk.runs.join(tid, run_id) == values
    attempt = "SELECT attempt FROM thread_runs WHERE run_id = $1"
    assert await db.fetchval(attempt, uuid.UUID(run_id)) == 2


async def test_a_run_past_its_attempts_ends_error_saying_so(
    sdk: LangGraphClient, db: asyncpg.Connection
) -> None:
    tid, run_id, _ = await ran(sdk)
    await db.execute(
        "UPDATE thread_runs SET status = 'running', attempt = $2 WHERE run_id = $1",
        uuid.UUID(run_id),
        MAX_ATTEMPTS,
    )
    assert await swept(sdk, tid, run_id) == "error"
    parts = [p async for p in sdk.runs.join_stream(tid, run_id)]
    assert parts[-1].event == "error"
    assert "exceeded max attempts" in parts[-1].data["message"]
    assert [p.data["attempt"] for p in parts if p.event == "metadata"] == [1, MAX_ATTEMPTS + 1]


async def test_a_run_paused_at_a_breakpoint_is_not_taken_past_it(
    sdk: LangGraphClient, db: asyncpg.Connection
) -> None:
    tid = (await sdk.threads.create())["thread_id"]
    await sdk.runs.wait(tid, "vera", input=user(QUESTION), interrupt_before=["tools"])
    assert (await sdk.threads.get_state(tid))["next"] == ["tools"]
    run = (await sdk.runs.list(tid))[0]
    assert run["status"] == "interrupted"
    # Its worker died as the graph stopped at the breakpoint, before recording it.
    await db.execute(STATUS, uuid.UUID(run["run_id"]), "running")
    assert await swept(sdk, tid, run["run_id"]) == "interrupted"
    assert (await sdk.threads.get_state(tid))["next"] == ["tools"]  # no tool ran
