"""Sessions idle past their TTL are deleted whole by a sweep that runs in every worker
(issue 27, point 2): the TTL of a session (`/sessions/{id}/ttl`), two workers sweeping one
database at once, and the sweep loop on its own."""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from typing import Any

import asyncpg
import httpx
import pytest
from langchain_core.messages import HumanMessage

from src.api.app import create_app
from src.api.session_erase import Erased
from src.config.settings import SettingsError
from tests.api_harness import api_client, chat, serve, settings_for
from tests.data_life import make_idle, rows_of
from tests.fakes import FakeModel
from tests.support import chat_graph, memory_env, plant_expired_lease

QUESTION = "What's the weather in Montevideo?"
ALICE = "alice-key-0123456789abcdefghijklmnop"
BOB = "bob-key-0123456789abcdefghijklmnopqrs"


async def test_a_session_gets_a_ttl_of_its_own_and_back_the_default(empty_dsn: str) -> None:
    settings = settings_for(empty_dsn, session_ttl_minutes=60, api_keys=f"erin:{ALICE},frank:{BOB}")
    async with api_client(settings, headers={"X-API-Key": ALICE}) as client:
        sid = str(uuid.uuid4())
        await chat(client, sid, QUESTION)
        lifetime = (await client.get(f"/sessions/{sid}/ttl")).json()
        assert lifetime["ttl_minutes"] is None
        assert lifetime["effective_ttl_minutes"] == 60
        idle_since = lifetime["idle_since"]
        assert lifetime["expires_at"] > idle_since

        own = await client.put(f"/sessions/{sid}/ttl", json={"ttl_minutes": 1.5})
        assert own.status_code == 200, own.text
        assert own.json()["ttl_minutes"] == own.json()["effective_ttl_minutes"] == 1.5
        assert (await client.get(f"/sessions/{sid}/ttl")).json() == own.json()

        back = (await client.put(f"/sessions/{sid}/ttl", json={"ttl_minutes": None})).json()
        assert back["ttl_minutes"] is None and back["effective_ttl_minutes"] == 60

        for bad in (
            {},
            {"ttl_minutes": 0},
            {"ttl_minutes": -5},
            {"ttl_minutes": 1e12},
            {"ttl_minutes": "soon"},
            {"ttl_minutes": 5, "strategy": "delete"},
        ):
            response = await client.put(f"/sessions/{sid}/ttl", json=bad)
            assert response.status_code == 422, (bad, response.text)
            assert response.json()["code"] == "invalid_request"

        # Another principal's session, and a session that does not exist, are not found.
        bob = {"X-API-Key": BOB}
        for path in (f"/sessions/{sid}/ttl", f"/sessions/{uuid.uuid4()}/ttl"):
            for method, kwargs in (("GET", {}), ("PUT", {"json": {"ttl_minutes": 5}})):
                response = await client.request(method, path, headers=bob, **kwargs)
                assert response.status_code == 404, (method, path, response.text)
        assert (await client.get(f"/sessions/{sid}/ttl")).json()["ttl_minutes"] is None


async def test_without_a_default_only_sessions_with_a_ttl_of_their_own_are_swept(
    empty_dsn: str, fresh_db: asyncpg.Connection
) -> None:
    app = create_app(settings_for(empty_dsn), model=FakeModel())
    async with serve(app) as url, httpx.AsyncClient(base_url=url, timeout=30) as client:
        own, plain = str(uuid.uuid4()), str(uuid.uuid4())
        for sid in (own, plain):
            await chat(client, sid, QUESTION)
        assert (await client.get(f"/sessions/{plain}/ttl")).json()["expires_at"] is None
        await client.put(f"/sessions/{own}/ttl", json={"ttl_minutes": 10})
        await make_idle(fresh_db, [own, plain], minutes=11)
        swept = await app.state.sweeper.sweep()
    assert swept.session_ids == {uuid.UUID(own)}
    assert set((await rows_of(fresh_db, [own])).values()) == {0}
    assert (await rows_of(fresh_db, [plain]))["conversations"] == 1


def _record_claims(app: Any, claims: list[uuid.UUID]) -> None:
    """Record every session the app's sweeper is given to delete."""
    eraser = app.state.eraser
    erase = eraser.erase

    async def recording(session_ids: list[uuid.UUID], run_id: uuid.UUID, reason: str) -> Erased:
        claims.extend(session_ids)
        return await erase(session_ids, run_id, reason)

    eraser.erase = recording


async def _bytes_of(fresh_db: asyncpg.Connection, session_ids: list[str]) -> int:
    """What the rows of these sessions take as stored, over every table with a session but
    the leases (claims, made and dropped by the deletion itself)."""
    tables = [t for t in await rows_of(fresh_db, session_ids) if t != "turn_leases"]
    total = 0
    for table in tables:
        total += await fresh_db.fetchval(
            f"SELECT COALESCE(sum(pg_column_size(t.*)), 0) FROM {table} AS t "
            "WHERE t.session_id = ANY($1::uuid[])",
            [uuid.UUID(s) for s in session_ids],
        )
    return total


async def test_two_workers_sweep_one_database_at_once(
    empty_dsn: str, fresh_db: asyncpg.Connection
) -> None:
    """Two app instances sweep the same expired sessions at once, in small batches: every
    expired session is claimed by exactly one of them and deleted whole; a session with a
    turn running (its lease live) is never swept, nor are fresh ones or those with a longer
    TTL of their own; one whose worker died mid-turn (lease expired) is."""
    settings = settings_for(
        empty_dsn,
        session_ttl_minutes=60,
        session_ttl_sweep_batch=3,
        session_ttl_sweep_interval_minutes=1440,
        rate_limit_per_minute=100_000,
    )
    gate, started = asyncio.Event(), asyncio.Event()
    first, second = (
        create_app(settings, model=FakeModel()),
        create_app(settings, model=FakeModel(gate=gate, started=started, gate_from_call=2)),
    )
    claims: dict[str, list[uuid.UUID]] = {"first": [], "second": []}
    async with (
        serve(first) as url_a,
        serve(second) as url_b,
        httpx.AsyncClient(base_url=url_a, timeout=60) as a,
        httpx.AsyncClient(base_url=url_b, timeout=60) as b,
    ):
        _record_claims(first, claims["first"])
        _record_claims(second, claims["second"])
        idle = [str(uuid.uuid4()) for _ in range(24)]
        fresh, long_own, short_own, dead, busy = (str(uuid.uuid4()) for _ in range(5))
        for chunk in range(0, len(idle), 8):
            await asyncio.gather(*(chat(a, s, QUESTION) for s in idle[chunk : chunk + 8]))
        for sid in (fresh, long_own, short_own, dead):
            await chat(a, sid, QUESTION)
        await chat(b, busy, "Hello")  # the gated model lets this first call through
        unowned = str(uuid.uuid4())  # written without the API (Studio, a script)
        await first.state.runner.graph.ainvoke(
            {"messages": [HumanMessage("hi")]}, {"configurable": {"thread_id": unowned}}
        )
        await a.put(f"/sessions/{long_own}/ttl", json={"ttl_minutes": 1000})
        await a.put(f"/sessions/{short_own}/ttl", json={"ttl_minutes": 1})
        # The second turn of `busy` waits at its model call, holding the session's lease.
        running = asyncio.create_task(chat(b, busy, "And the price of AAPL?"))
        await asyncio.wait_for(started.wait(), 30)
        await make_idle(fresh_db, [*idle, long_own, dead, busy, unowned], minutes=120)
        await make_idle(fresh_db, [short_own], minutes=5)
        await plant_expired_lease(fresh_db, dead)
        expired = [*idle, short_own, dead, unowned]
        expected_bytes = await _bytes_of(fresh_db, expired)

        results = await asyncio.gather(first.state.sweeper.sweep(), second.state.sweeper.sweep())

        assert set(claims["first"]).isdisjoint(claims["second"])
        claimed = claims["first"] + claims["second"]
        assert sorted(claimed) == sorted(uuid.UUID(s) for s in expired)  # each exactly once
        assert claims["first"] and claims["second"]  # both took part
        deleted = results[0].session_ids | results[1].session_ids
        assert deleted == {uuid.UUID(s) for s in expired}
        # pg_column_size of a row as a composite varies by a few bytes with the plan that
        # read it: the same figure to within a thousandth.
        assert results[0].bytes + results[1].bytes == pytest.approx(expected_bytes, rel=1e-3)
        leftovers = await rows_of(fresh_db, expired)
        assert set(leftovers.values()) == {0}, leftovers

        gate.set()
        events = await running
        assert events[-1].event == "done"
        for sid in (fresh, long_own, busy):
            assert (await rows_of(fresh_db, [sid]))["conversations"] == 1
        messages = (await b.get(f"/sessions/{busy}/messages")).json()["messages"]
        assert [m["content"] for m in messages if m["role"] == "user"] == [
            "Hello",
            "And the price of AAPL?",
        ]


def _metric(text: str, name: str, reason: str) -> float:
    match = re.search(rf'^{name}{{reason="{reason}"}} (\S+)$', text, re.M)
    return float(match[1]) if match else 0.0


async def test_the_sweep_loop_deletes_an_idle_session_by_itself(
    empty_dsn: str, fresh_db: asyncpg.Connection, caplog: pytest.LogCaptureFixture
) -> None:
    """As on LangGraph's Agent Server: a session with a 0.05-minute TTL is gone a few
    seconds later, with a log line and the metrics of what the sweep removed."""
    caplog.set_level(logging.INFO, logger="src.api.session_ttl")
    settings = settings_for(
        empty_dsn, session_ttl_minutes=0.05, session_ttl_sweep_interval_minutes=0.02
    )
    async with api_client(settings, timeout=30) as client:
        before = (await client.get("/metrics")).text
        sid = str(uuid.uuid4())
        await chat(client, sid, QUESTION)

        async def gone() -> bool:
            return (await rows_of(fresh_db, [sid]))["conversations"] == 0

        async with asyncio.timeout(30):
            while not await gone():  # noqa: ASYNC110 (database state: nothing to await)
                await asyncio.sleep(0.2)
        assert (await client.get(f"/sessions/{sid}/messages")).status_code == 404
        after = (await client.get("/metrics")).text
    assert set((await rows_of(fresh_db, [sid])).values()) == {0}
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("ttl sweep")]
    assert any(
        re.match(r"ttl sweep: deleted \d+ sessions \(\d+ bytes\) in \d+ ms", m) for m in lines
    )
    for name in ("vera_sessions_deleted_total", "vera_deleted_bytes_total"):
        assert _metric(after, name, "ttl") > _metric(before, name, "ttl"), name
    assert re.search(r'^vera_ttl_sweeps_total\{outcome="ok"\} [1-9]', after, re.M)


async def test_make_devs_checkpointer_sweeps_with_langgraph_json_ttl(
    empty_dsn: str, fresh_db: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`langgraph dev` (make dev) opens `graphs/checkpointer.py`, which sweeps with the TTL
    of langgraph.json's `checkpointer.ttl`, as LangGraph's server parsed it."""
    from graphs import checkpointer as studio

    for name, value in memory_env(empty_dsn).items():
        monkeypatch.setenv(name, value)
    ttl = {"strategy": "delete", "default_ttl": 0.05, "sweep_interval_minutes": 0.02}
    monkeypatch.setattr(studio, "thread_ttl", lambda: ttl)
    async with studio.checkpointer() as saver:
        graph = chat_graph(saver)
        thread = str(uuid.uuid4())
        await graph.ainvoke(
            {"messages": [HumanMessage("hi")]}, {"configurable": {"thread_id": thread}}
        )
        assert (await rows_of(fresh_db, [thread]))["conversations"] == 1
        async with asyncio.timeout(30):
            while (await rows_of(fresh_db, [thread]))["conversations"]:  # noqa: ASYNC110
                await asyncio.sleep(0.2)
    assert set((await rows_of(fresh_db, [thread])).values()) == {0}
    monkeypatch.setattr(studio, "thread_ttl", lambda: {"strategy": "archive"})
    with pytest.raises(SettingsError, match="strategy 'archive'"):
        async with studio.checkpointer():
            pass
