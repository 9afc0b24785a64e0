"""Waiting for a pooled connection is not the database being down (issue 23, point 6):
with the database up, a worker out of pooled connections, or running as many turns as it
may, answers 503 `overloaded` with `Retry-After` (counted in the metrics) after a bounded
wait, never `storage_unavailable`, and stores nothing of the turns it refuses."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
import httpx

from tests.api_harness import parse_sse, samples, settings_for, value, worker
from tests.fakes import FakeModel

SMALL_POOL = {"postgres_memory_pool_min": 2, "postgres_memory_pool_max": 2}


async def post_chat(client: httpx.AsyncClient, sid: str) -> tuple[int, dict[str, str], Any]:
    """`POST /chat`: the status, the headers, and the events (a stream) or the JSON body."""
    body = {"session_id": sid, "message": f"Hello from {sid}"}
    async with client.stream("POST", "/chat", json=body) as response:
        text = (await response.aread()).decode()
    if response.status_code == 200:
        return 200, dict(response.headers), parse_sse(text)[0]
    return response.status_code, dict(response.headers), httpx.Response(200, text=text).json()


STORED = ("conversations", "conversation_messages", "checkpoints", "turn_events")


async def stored_rows(dsn: str, sids: list[str], tables: tuple[str, ...] = STORED) -> int:
    """Rows of these sessions in `tables` (by default: anything of a turn)."""
    conn = await asyncpg.connect(dsn)
    try:
        ids = [uuid.UUID(s) for s in sids]
        counts = [
            await conn.fetchval(f"SELECT count(*) FROM {t} WHERE session_id = ANY($1)", ids)
            for t in tables
        ]
    finally:
        await conn.close()
    return sum(counts)


async def listed(client: httpx.AsyncClient) -> set[str]:
    response = await client.get("/sessions", params={"limit": 100})
    assert response.status_code == 200, response.text
    return {s["session_id"] for s in response.json()["sessions"]}


async def scraped(client: httpx.AsyncClient) -> dict:
    return samples((await client.get("/metrics")).text)


def growth(before: dict, after: dict, name: str, **labels: str) -> float:
    """How much a counter grew (the registry is the test process's, shared by tests)."""
    return value(after, name, **labels) - value(before, name, **labels)


def refused_as_overloaded(status: int, headers: dict[str, str], body: Any) -> bool:
    return status == 503 and body["code"] == "overloaded" and int(headers["retry-after"]) > 0


async def test_a_turn_finding_every_pooled_connection_lent_out_is_overloaded(
    database_dsn: str,
) -> None:
    """Both connections of the pool are lent out (to requests still running) past the pool
    wait: the next turn is refused as overloaded, not as the database being unavailable,
    and once they are back the same message goes through."""
    settings = settings_for(
        database_dsn,
        **SMALL_POOL,
        postgres_memory_connect_timeout=0.5,
        postgres_memory_pool_wait=0.5,
    )
    async with worker(settings, FakeModel()) as (app, client):
        before = await scraped(client)
        store, release = app.state.store, asyncio.Event()
        lent = [asyncio.create_task(store.run(lambda _conn: release.wait())) for _ in range(2)]
        sid = str(uuid.uuid4())
        try:
            status, headers, body = await post_chat(client, sid)
        finally:
            release.set()
            await asyncio.gather(*lent)
        assert refused_as_overloaded(status, headers, body), (status, body)
        assert await stored_rows(database_dsn, [sid], (*STORED, "session_owners")) == 0
        after = await scraped(client)
        assert growth(before, after, "vera_overloaded_total", where="request") == 1
        assert growth(before, after, "vera_storage_errors_total", where="request") == 0
        status, _, events = await post_chat(client, sid)
        assert status == 200 and events[-1].event == "done"


async def test_turns_over_the_workers_bound_wait_then_are_refused_before_storing(
    database_dsn: str,
) -> None:
    """A worker that may run 3 turns gets 8 at once, the model holding the first ones: 3
    run and end `done`, the 5 others wait `TURN_QUEUE_SECONDS` and are refused as
    overloaded, with nothing of them stored (no owner row, no transcript)."""
    settings = settings_for(
        database_dsn, **SMALL_POOL, max_concurrent_turns=3, turn_queue_seconds=0.5
    )
    gate = asyncio.Event()
    model = FakeModel(gate=gate)
    async with worker(settings, model) as (_, client):
        before = await scraped(client)
        sids = [str(uuid.uuid4()) for _ in range(8)]
        turns = {sid: asyncio.create_task(post_chat(client, sid)) for sid in sids}
        pending = set(turns.values())
        while len(pending) > 3:  # the turns over the bound end while the model waits
            _, pending = await asyncio.wait(
                pending, timeout=20, return_when=asyncio.FIRST_COMPLETED
            )
        refused = [sid for sid, task in turns.items() if task.done()]
        gate.set()
        answers = {sid: await task for sid, task in turns.items()}
        assert model.calls == 3, "more turns than the bound reached the model"
        assert sorted(refused) == sorted(s for s, a in answers.items() if a[0] == 503)
        assert len(refused) == 5
        assert all(refused_as_overloaded(*answers[s]) for s in refused)
        admitted = [s for s in sids if s not in refused]
        assert all(answers[s][0] == 200 and answers[s][2][-1].event == "done" for s in admitted)
        # Refused before the session is even claimed.
        assert await stored_rows(database_dsn, refused, (*STORED, "session_owners")) == 0
        after = await scraped(client)
        assert growth(before, after, "vera_overloaded_total", where="admission") == 5


async def test_more_concurrent_turns_than_the_pool_holds_are_answered_or_overloaded(
    database_dsn: str,
) -> None:
    """40 new sessions send a turn at once to a worker with a pool of 2 and a short pool
    wait: every answer is a stream or 503 overloaded with `Retry-After`; no turn reports
    the database unavailable, and nothing of a refused one is stored or listed."""
    settings = settings_for(
        database_dsn,
        **SMALL_POOL,
        postgres_memory_connect_timeout=0.05,
        postgres_memory_pool_wait=0.05,
        turn_queue_seconds=0.05,
    )
    async with worker(settings, FakeModel()) as (_, client):
        sids = [str(uuid.uuid4()) for _ in range(40)]
        answers = dict(zip(sids, await asyncio.gather(*(post_chat(client, s) for s in sids))))
        shown = await listed(client)
    codes = [
        a[2]["code"] if a[0] != 200 else a[2][-1].data.get("code", a[2][-1].event)
        for a in answers.values()
    ]
    assert "storage_unavailable" not in codes, codes
    refused = [s for s, a in answers.items() if a[0] != 200]
    assert all(refused_as_overloaded(*answers[s]) for s in refused), codes
    assert await stored_rows(database_dsn, refused) == 0  # (a claimed owner row at most)
    assert not shown & set(refused)
    answered = [s for s, a in answers.items() if a[0] == 200]
    assert answered, "no turn went through"
    assert all(answers[s][2][-1].event in {"done", "error"} for s in answered)
