"""Every turn ends in one known state, with nothing stored twice, whatever fails and where:
retries by turn id or by message, the database cut at every event of a tool turn, and a
worker stalled past its lease while another takes the session (fencing)."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import asyncpg
import httpx
import pytest
from pydantic import BaseModel

from src.agent.memory.store import StorageUnavailableError
from src.api import turn_stream
from tests.api_harness import (
    QUESTION,
    send,
    settings_for,
    wait_until,
    worker,
)
from tests.fakes import FakeModel, ProviderError


class FailOnCalls(FakeModel):
    """The offline model, failing the model calls whose numbers are in `failing`."""

    failing: frozenset[int] = frozenset()

    async def _before(self) -> None:
        await super()._before()
        if self.calls in self.failing:
            raise ProviderError(429)


async def transcript(database_dsn: str, sid: str) -> list[tuple[str, str]]:
    conn = await asyncpg.connect(database_dsn)
    try:
        rows = await conn.fetch(
            "SELECT e->>'role' AS role, e->>'content' AS content, e->>'id' AS id "
            "FROM conversations, jsonb_array_elements(messages) e WHERE session_id = $1",
            uuid.UUID(sid),
        )
    finally:
        await conn.close()
    return [(r["role"], r["content"]) for r in rows]


def untimed(rows: list[tuple[str, str]]) -> list[tuple[str, Any]]:
    """Tool results without their observation times (a tool that runs again, because its
    result was never stored, observes a later time)."""
    out: list[tuple[str, Any]] = []
    for role, content in rows:
        if role == "tool":
            data = json.loads(content)
            content = {k: v for k, v in data.items() if k not in ("observed_at", "timestamp")}
        out.append((role, content))
    return out


async def lease_free(database_dsn: str, sid: str) -> bool:
    conn = await asyncpg.connect(database_dsn)
    try:
        return not await conn.fetchval(
            "SELECT EXISTS (SELECT FROM turn_leases WHERE session_id = $1)", uuid.UUID(sid)
        )
    finally:
        await conn.close()


async def test_retry_after_a_failure_past_the_model_step_stores_nothing_twice(
    database_dsn: str,
) -> None:
    """The second model call fails (429) after the tools ran: resending the message
    resumes the run; the user message and tool results are stored once."""
    model = FailOnCalls(failing=frozenset({2}))
    async with worker(settings_for(database_dsn), model) as (_, client):
        sid = str(uuid.uuid4())
        failed = await send(client, sid, QUESTION)
        assert [e.event for e in failed][-1] == "error"
        assert failed[-1].data["code"] == "llm_unavailable"
        before = await transcript(database_dsn, sid)
        assert [r for r, _ in before] == ["user", "assistant", "tool", "tool"]
        retried = await send(client, sid, QUESTION)
        assert retried[-1].event == "done"
        after = await transcript(database_dsn, sid)
        assert after[:4] == before and [r for r, _ in after] == [
            "user",
            "assistant",
            "tool",
            "tool",
            "assistant",
        ]
        assert not [e for e in retried if e.event == "tool_result"]  # tools did not run again
        assert model.calls == 3 and retried[0].data["resumed"] is True


async def test_a_completed_turn_id_returns_its_stored_answer(database_dsn: str) -> None:
    model = FakeModel()
    async with worker(settings_for(database_dsn), model) as (_, client):
        sid = str(uuid.uuid4())
        first = await send(client, sid, QUESTION, turn_id="turn-1")
        assert first[0].data["turn_id"] == "turn-1" and first[0].data["resumed"] is False
        calls, stored = model.calls, await transcript(database_dsn, sid)
        again = await send(client, sid, QUESTION, turn_id="turn-1")
        assert again[0].data["resumed"] is True and again[-1].event == "done"
        answer = "".join(e.data["content"] for e in first if e.event == "token")
        assert "".join(e.data["content"] for e in again if e.event == "token") == answer
        assert [e.data["id"] for e in again if e.event == "tool_result"] == [
            e.data["id"] for e in first if e.event == "tool_result"
        ]
        complete = await send(client, sid, QUESTION, turn_id="turn-1", path="/chat/complete")
        assert complete.status_code == 200 and complete.json()["response"] == answer
        assert complete.json()["turn_id"] == "turn-1"
        assert model.calls == calls and await transcript(database_dsn, sid) == stored
        # The same message under a new turn id is a new turn; a used id with another
        # message is refused.
        conflict = await send(
            client, sid, "Something else", turn_id="turn-1", path="/chat/complete"
        )
        assert conflict.status_code == 409 and conflict.json()["code"] == "turn_conflict"
        await send(client, sid, QUESTION, turn_id="turn-2")
        assert len(await transcript(database_dsn, sid)) == 2 * len(stored)


@pytest.mark.parametrize("cut_at", ["session", "tool_call", "tool_result", "token", "done"])
async def test_database_cut_at_any_event_then_retry_stores_the_turn_once(
    database_dsn: str, monkeypatch: pytest.MonkeyPatch, cut_at: str
) -> None:
    """The database goes away right after the turn emits `cut_at`; once it is back, the
    client resends with the same turn id: the final transcript equals an uninterrupted
    turn's, with one copy of the user message and of each tool result."""
    settings = settings_for(database_dsn, session_lease_seconds=2)
    async with worker(settings, FakeModel()) as (app, client):
        reference = str(uuid.uuid4())
        await send(client, reference, QUESTION)
        expected = await transcript(database_dsn, reference)

        store = app.state.store
        real_run, down = store.run, asyncio.Event()

        async def run(fn):
            if down.is_set():
                raise StorageUnavailableError("memory database unavailable (cut by the test)")
            return await real_run(fn)

        real_record = turn_stream.Turn.record  # every event, streamed or final, passes here

        def record(self, payload: BaseModel) -> turn_stream.TurnEvent:
            event = real_record(self, payload)
            if event.event == cut_at:
                down.set()
            return event

        monkeypatch.setattr(store, "run", run)
        monkeypatch.setattr(turn_stream.Turn, "record", record)
        sid = str(uuid.uuid4())
        first = await send(client, sid, QUESTION, turn_id="t1")
        assert first[-1].event in {"done", "error"}
        assert down.is_set(), f"the turn never recorded {cut_at!r}: nothing was cut"
        down.clear()
        monkeypatch.setattr(turn_stream.Turn, "record", real_record)
        await wait_until(lambda: lease_free(database_dsn, sid))
        retried = await send(client, sid, QUESTION, turn_id="t1")
        assert retried[-1].event == "done", retried[-1]
        assert untimed(await transcript(database_dsn, sid)) == untimed(expected)


async def test_a_worker_stalled_past_its_lease_cannot_write_after_a_takeover(
    database_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Worker A stalls (its model and its lease renewals stop) past its lease; workers B and
    C take the session in turn and complete turns. When A wakes up, its write is refused in
    the database: A's client gets `lease_lost`, and the checkpoint chain never forks."""
    settings = settings_for(database_dsn, session_lease_seconds=1)
    gate, started = asyncio.Event(), asyncio.Event()
    stalled = FakeModel(gate=gate, started=started)
    async with (
        worker(settings, stalled) as (app_a, client_a),
        worker(settings, FakeModel()) as (_, client_b),
        worker(settings, FakeModel()) as (_, client_c),
    ):
        never = asyncio.Event()

        async def paused(*args: Any) -> None:  # a paused worker renews nothing
            await never.wait()

        monkeypatch.setattr(app_a.state.runner.leases, "_keep_renewed", paused)
        sid = str(uuid.uuid4())
        turn_a = asyncio.create_task(send(client_a, sid, "Weather in Montevideo?"))
        await asyncio.wait_for(started.wait(), 10)

        def taken_over_by(client: httpx.AsyncClient, message: str):
            async def done() -> bool:
                response = await send(client, sid, message, path="/chat/complete")
                return response.status_code == 200

            return done

        await wait_until(taken_over_by(client_b, "Price of AAPL?"))
        # B and C race for the next turns; exactly one runs at a time.
        results = await asyncio.gather(
            send(client_b, sid, "Price of MSFT?", path="/chat/complete"),
            send(client_c, sid, "Weather in Lima?", path="/chat/complete"),
        )
        assert sorted(r.status_code for r in results) in ([200, 200], [200, 409])
        gate.set()
        events = await turn_a
        assert events[-1].event == "error" and events[-1].data["code"] == "lease_lost"

    conn = await asyncpg.connect(database_dsn)
    try:
        children = await conn.fetch(
            "SELECT parent_checkpoint_id, count(*) AS n FROM checkpoints WHERE session_id = $1 "
            "AND checkpoint_ns = '' GROUP BY 1",
            uuid.UUID(sid),
        )
    finally:
        await conn.close()
    assert all(r["n"] == 1 for r in children), "the checkpoint chain forked"
    roles = await transcript(database_dsn, sid)
    assert roles[0] == ("user", "Weather in Montevideo?")
    assert ("user", "Price of AAPL?") in roles and roles[-1][0] == "assistant"
    answered = sum(1 for r in results if r.status_code == 200)
    # A's answer never made it: only B's and C's turns are answered.
    assert sum(1 for r, c in roles if r == "assistant" and c) == 1 + answered
