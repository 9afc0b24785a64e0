"""`multitask_strategy` of a run sent while another run holds the thread, driven by
`langgraph_sdk`: absent, it is langgraph-api's default `enqueue` (the run waits its turn);
`interrupt` stops the running run (`interrupted`, what it stored kept) and starts the new
one; `rollback` stops it and removes it with the checkpoints and messages it stored
before the new one starts."""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import cast

import asyncpg
import pytest
from langgraph_sdk.client import LangGraphClient
from langgraph_sdk.errors import NotFoundError

from src.agent.memory import PostgresMemoryStore
from src.api.agent_server.run_book import RunBook
from src.api.agent_server.run_start import supersede
from src.api.turns import TurnRunner
from tests.agent_server_runs import user
from tests.api_harness import wait_until
from tests.fakes import FakeModel

KEY = "multitask-key-0123456789abcdefghijklm"


@pytest.fixture
def model() -> FakeModel:
    """A model whose calls wait for its gate."""
    return FakeModel(gate=asyncio.Event(), started=asyncio.Event())


@pytest.fixture
def api_key() -> str:
    return KEY


def humans(values: dict) -> list[str]:
    return [m["content"] for m in values["messages"] if m["type"] == "human"]


async def run_checkpoints(db: asyncpg.Connection, tid: str, run_id: str) -> int:
    return await db.fetchval(
        "SELECT count(*) FROM checkpoints WHERE session_id = $1 AND metadata->>'run_id' = $2",
        uuid.UUID(tid),
        run_id,
    )


async def test_a_run_without_a_strategy_waits_its_turn_as_langgraph_apis_default(
    sdk: LangGraphClient, model: FakeModel
) -> None:
    tid = (await sdk.threads.create())["thread_id"]
    first = await sdk.runs.create(tid, "vera", input=user("First"))
    assert model.started is not None and model.gate is not None
    await model.started.wait()
    second = await sdk.runs.create(tid, "vera", input=user("Second"))
    assert (second["status"], second["multitask_strategy"]) == ("pending", "enqueue")
    assert first["multitask_strategy"] == "enqueue"
    model.gate.set()
    values = await sdk.runs.join(tid, second["run_id"])
    assert humans(values) == ["First", "Second"]
    assert {r["status"] for r in await sdk.runs.list(tid)} == {"success"}


@pytest.mark.parametrize("strategy", ["interrupt", "rollback"])
async def test_a_run_that_supersedes_stops_the_running_one_first(
    sdk: LangGraphClient, model: FakeModel, db: asyncpg.Connection, strategy: str
) -> None:
    tid = (await sdk.threads.create())["thread_id"]
    old = await sdk.runs.create(tid, "vera", input=user("Old"))
    assert model.started is not None and model.gate is not None
    await model.started.wait()  # its input is stored; its model call waits
    assert await run_checkpoints(db, tid, old["run_id"]) > 0
    new = await sdk.runs.create(tid, "vera", input=user("New"), multitask_strategy=strategy)
    assert new["multitask_strategy"] == strategy

    async def old_stopped() -> bool:
        try:
            return (await sdk.runs.get(tid, old["run_id"]))["status"] != "running"
        except NotFoundError:
            return True

    await wait_until(old_stopped)
    model.gate.set()
    values = await sdk.runs.join(tid, new["run_id"])
    assert (await sdk.runs.get(tid, new["run_id"]))["status"] == "success"
    if strategy == "interrupt":
        assert (await sdk.runs.get(tid, old["run_id"]))["status"] == "interrupted"
        assert await run_checkpoints(db, tid, old["run_id"]) > 0
        assert humans(values) == ["Old", "New"]
    else:
        with pytest.raises(NotFoundError):
            await sdk.runs.get(tid, old["run_id"])
        assert await run_checkpoints(db, tid, old["run_id"]) == 0
        assert humans(values) == ["New"]


async def test_a_superseding_run_stops_the_runs_sent_before_it_never_one_sent_after(
    store: PostgresMemoryStore,
) -> None:
    # Two `rollback` runs sent at once each supersede: the later must not be rolled back by
    # the earlier, or both go and the thread keeps nothing (an outside test saw it, 3 in 18).
    book = RunBook(store)
    thread = uuid.uuid4()
    ids = [uuid.uuid4() for _ in range(3)]
    for run_id, strategy in zip(ids, ("enqueue", "rollback", "rollback"), strict=True):
        await book.insert(run_id, thread, uuid.UUID(int=1), {}, {"input": None}, strategy)
    before, mine, after = ids
    # Queued runs only: a queued run leaves its queue without the runner.
    await supersede(thread, mine, "rollback", book, cast(TurnRunner, None))
    assert [r["run_id"] for r in await book.active(thread)] == [mine, after]
    assert before not in [r["run_id"] for r in await book.active(thread)]


async def test_a_queued_run_deleted_before_it_starts_leaves_its_queue_quietly(
    sdk: LangGraphClient, model: FakeModel, caplog: pytest.LogCaptureFixture
) -> None:
    # An outside test deleted a thread with a run queued on it: the queue's worker logged
    # "did not start" as an ERROR with a traceback. Deleting the queued run alone, while
    # the run before it still runs, takes the same path without a race.
    caplog.set_level(logging.INFO, logger="vera.runs")
    tid = (await sdk.threads.create())["thread_id"]
    await sdk.runs.create(tid, "vera", input=user("First"))
    assert model.started is not None and model.gate is not None
    try:
        await model.started.wait()
        queued = await sdk.runs.create(tid, "vera", input=user("Second"))
        assert queued["status"] == "pending"
        await sdk.runs.delete(tid, queued["run_id"])

        async def left() -> bool:
            return any(queued["run_id"] in r.getMessage() for r in caplog.records)

        await wait_until(left)
    finally:
        model.gate.set()
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
