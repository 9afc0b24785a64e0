"""The first messages of a new session (issue 23, points 4 and 7): concurrent first
messages under one key are answered as a busy session, never as someone else's; a refused
first message leaves no title and no listed session behind."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from src.agent.memory.store import StorageUnavailableError
from src.api.app import create_app
from tests.api_harness import chat, serve, settings_for, wait_until
from tests.fakes import FakeModel

ALICE = "alice-key-0123456789abcdefghijklmnop"
SESSIONS, SENDERS = 30, 4


async def test_concurrent_first_messages_are_busy_never_not_found(
    database_dsn: str, db: asyncpg.Connection
) -> None:
    """30 new sessions x 4 concurrent first messages under one key, on two apps sharing
    the database: each answer is the turn (200) or `session_busy` (409), never 404."""
    settings = settings_for(database_dsn, api_keys=f"racer:{ALICE}", rate_limit_per_minute=10_000)
    limits = httpx.Limits(max_connections=SESSIONS * SENDERS)
    gate = asyncio.Event()
    models = [FakeModel(gate=gate) for _ in range(2)]
    apps = [create_app(settings, model=model) for model in models]
    async with serve(apps[0]) as one, serve(apps[1]) as two:
        clients = [
            httpx.AsyncClient(base_url=url, headers={"X-API-Key": ALICE}, timeout=60, limits=limits)
            for url in (one, two)
        ]
        sids = [str(uuid.uuid4()) for _ in range(SESSIONS)]

        async def send(n: int, sid: str) -> tuple[int, str]:
            body = {"session_id": sid, "message": f"first message {n}"}
            response = await clients[n % 2].post("/chat/complete", json=body)
            return response.status_code, response.json()["code" if response.is_error else "turn_id"]

        tasks = [asyncio.create_task(send(n, sid)) for sid in sids for n in range(SENDERS)]

        # The turns that started wait at the gate, holding their sessions: every other
        # first message meets a claimed session with a running turn.
        async def answered_or_running() -> bool:
            return sum(t.done() for t in tasks) + sum(m.calls for m in models) >= len(tasks)

        await wait_until(answered_or_running, limit=60)
        gate.set()
        answers = await asyncio.gather(*tasks)
        for client in clients:
            await client.aclose()
    statuses = Counter(status for status, _ in answers)
    assert set(statuses) <= {200, 409}, (statuses, [a for a in answers if a[0] not in (200, 409)])
    assert {code for status, code in answers if status == 409} <= {"session_busy"}
    owners = await db.fetch(
        "SELECT principal FROM session_owners WHERE session_id = ANY($1::uuid[])", sids
    )
    assert [row["principal"] for row in owners] == ["racer"] * SESSIONS


async def _take_the_lease(app: FastAPI, db: asyncpg.Connection, sid: str) -> Callable[[], Any]:
    """Another turn holds the session: the first message is refused 409 `session_busy`."""
    await db.execute(
        "INSERT INTO turn_leases (session_id, run_id, expires_at)"
        " VALUES ($1, gen_random_uuid(), NOW() + interval '1 hour')",
        uuid.UUID(sid),
    )
    return lambda: db.execute("DELETE FROM turn_leases WHERE session_id = $1", uuid.UUID(sid))


async def _storage_down_at_start(
    app: FastAPI, db: asyncpg.Connection, sid: str
) -> Callable[[], Any]:
    """The database goes away after the claim: the first message is refused 503."""
    leases = app.state.runner.leases
    acquire = leases.acquire

    async def unavailable(*args: Any) -> None:
        raise StorageUnavailableError("cut")

    leases.acquire = unavailable

    async def restore() -> None:
        leases.acquire = acquire

    return restore


@pytest.mark.parametrize(
    ("refusal", "status"), [(_take_the_lease, 409), (_storage_down_at_start, 503)]
)
async def test_a_refused_first_message_neither_titles_nor_lists_the_session(
    database_dsn: str,
    db: asyncpg.Connection,
    refusal: Callable[..., Awaitable[Callable[[], Any]]],
    status: int,
) -> None:
    """The title is the first user message that was stored: a first message refused before
    its turn started titles nothing and lists nothing; the next one, once stored, titles
    the session (while its turn still runs, and after)."""
    settings = settings_for(database_dsn, api_keys=f"titler:{ALICE}")
    sid = str(uuid.uuid4())
    gate = asyncio.Event()
    app = create_app(settings, model=FakeModel(gate=gate))
    async with (
        serve(app) as url,
        httpx.AsyncClient(base_url=url, headers={"X-API-Key": ALICE}, timeout=30) as client,
    ):
        undo = await refusal(app, db, sid)
        refused = await client.post(
            "/chat/complete", json={"session_id": sid, "message": "refused words"}
        )
        assert refused.status_code == status, refused.text
        assert sid not in await titles(client)
        await undo()
        turn = asyncio.create_task(chat(client, sid, "the words that were stored"))
        await wait_until(lambda: has_title(client, sid))
        assert (await titles(client))[sid] == "the words that were stored"  # mid-turn
        gate.set()
        assert (await turn)[-1].event == "done"
        assert (await titles(client))[sid] == "the words that were stored"
    title = "SELECT title FROM session_owners WHERE session_id = $1"
    assert await db.fetchval(title, uuid.UUID(sid)) == "the words that were stored"


async def titles(client: httpx.AsyncClient) -> dict[str, str]:
    response = await client.get("/sessions")
    assert response.status_code == 200, response.text
    return {s["session_id"]: s["title"] for s in response.json()["sessions"]}


async def has_title(client: httpx.AsyncClient, sid: str) -> bool:
    return sid in await titles(client)
