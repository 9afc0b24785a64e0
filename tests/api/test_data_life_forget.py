"""Forgetting a user (issue 27, point 4): `POST /admin/forget` deletes every session of a
principal or of one gateway end user in one call, admin keys only, and leaves no row of
theirs in any table of the schema; with a turn running on one, it deletes nothing."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import httpx
import pytest
from langchain_core.messages import HumanMessage

from src.api.app import create_app
from tests.api_harness import chat, serve, settings_for
from tests.data_life import NO_SESSION_DATA, fork_after_first_turn, rows_of, tables
from tests.fakes import FakeModel
from tests.support import plant_expired_lease

OPS = "ops-key-0123456789abcdefghijklmnopqrs"
WEB = "web-key-0123456789abcdefghijklmnopqrs"
ALICE = "alice-key-0123456789abcdefghijklmnop"
KEYS = f"ops:{OPS},web:{WEB},alice:{ALICE}"
DEFAULT = "default-key-0123456789abcdefghijklmn"
QUESTION = "What's the weather in Montevideo and the price of AAPL?"


@pytest.fixture
async def fresh_db(empty_dsn: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection to `empty_dsn`: a database of this test alone (the app it starts makes
    the schema), so that sweeping or forgetting everything touches no other test's rows."""
    conn = await asyncpg.connect(empty_dsn)
    try:
        yield conn
    finally:
        await conn.close()


@asynccontextmanager
async def server(dsn: str, model: FakeModel | None = None, **overrides: Any) -> AsyncIterator[Any]:
    values = {
        "api_keys": KEYS,
        "api_gateway_keys": "web",
        "api_admin_keys": "ops",
        "rate_limit_per_minute": 10_000,
        **overrides,
    }
    app = create_app(settings_for(dsn, **values), model=model or FakeModel())
    async with serve(app) as url, httpx.AsyncClient(base_url=url, timeout=60) as client:
        app.state.client = client
        yield app


def as_(key: str, user: str | None = None) -> dict[str, str]:
    return {"X-API-Key": key, **({"X-User-Id": user} if user else {})}


async def talk(client: httpx.AsyncClient, headers: dict[str, str], *messages: str) -> str:
    sid = str(uuid.uuid4())
    for message in messages:
        client.headers.update(headers)
        try:
            events = await chat(client, sid, message)
        finally:
            for name in headers:
                client.headers.pop(name, None)
        assert events[-1].event == "done", events[-1]
    return sid


async def forget(client: httpx.AsyncClient, body: dict[str, Any], key: str = OPS) -> httpx.Response:
    return await client.post("/admin/forget", json=body, headers=as_(key))


async def assert_nothing_left(
    db: asyncpg.Connection, sids: list[str], principal: str, user: str
) -> None:
    """No row of these sessions, nor of this owner, in any table of the schema; a table the
    test does not know how to check fails it (so a new table cannot be forgotten)."""
    ids = [uuid.UUID(s) for s in sids]
    for table, columns in sorted((await tables(db)).items()):
        if "session_id" in columns:
            left = await db.fetchval(
                f"SELECT count(*) FROM {table} WHERE session_id = ANY($1::uuid[])", ids
            )
            assert left == 0, f"{table}: {left} rows of the forgotten sessions"
        else:
            assert table in NO_SESSION_DATA, f"{table}: how does forgetting a user cover it?"
        if {"principal", "user_id"} <= columns:
            left = await db.fetchval(
                f"SELECT count(*) FROM {table} WHERE principal = $1 AND user_id = $2",
                principal,
                user,
            )
            assert left == 0, f"{table}: {left} rows of {principal}/{user}"


async def test_forgetting_an_end_user_leaves_no_row_of_theirs_in_any_table(
    empty_dsn: str, fresh_db: asyncpg.Connection
) -> None:
    async with server(empty_dsn) as app:
        client = app.state.client
        u1 = as_(WEB, "user-1")
        forked = await talk(client, u1, QUESTION, "My name is Ana")
        await fork_after_first_turn(app.state.runner.graph, forked, "Something else")
        theirs = [forked, await talk(client, u1, QUESTION), await talk(client, u1, "Hello")]
        await plant_expired_lease(fresh_db, theirs[2])  # the worker of its last turn died
        run = {"assistant_id": "vera", "input": {"messages": [{"role": "user", "content": "Hi"}]}}
        ran = await client.post(f"/threads/{theirs[1]}/runs/wait", json=run, headers=u1)
        assert ran.status_code == 200, ran.text  # an Agent Server run of theirs
        others = [
            await talk(client, as_(WEB, "user-2"), QUESTION),
            await talk(client, as_(WEB), "Hello"),  # the gateway's own session
            await talk(client, as_(ALICE), QUESTION),
        ]
        before = {sid: await rows_of(fresh_db, [sid]) for sid in others}
        stored = await rows_of(fresh_db, theirs)
        for table in (
            "conversations",
            "checkpoints",
            "checkpoint_blobs",
            "checkpoint_writes",
            "conversation_messages",
            "transcript_heads",
            "turn_events",
            "turn_leases",
            "session_owners",
            "thread_runs",
        ):
            assert stored[table] > 0, table  # the test has rows of theirs in every table

        response = await forget(client, {"principal": "web", "user_id": "user-1"})
        assert response.status_code == 200, response.text
        assert response.headers["cache-control"] == "no-store"  # a list of what was deleted
        result = response.json()
        assert result["sessions_deleted"] == 3
        assert result["bytes_deleted"] > 0
        assert (result["principal"], result["user_id"]) == ("web", "user-1")

        await assert_nothing_left(fresh_db, theirs, "web", "user-1")
        assert {sid: await rows_of(fresh_db, [sid]) for sid in others} == before
        listed = await client.get("/sessions", headers=u1)
        assert listed.json()["sessions"] == []
        again = await forget(client, {"principal": "web", "user_id": "user-1"})
        assert again.json()["sessions_deleted"] == 0


async def test_only_an_admin_key_may_forget(empty_dsn: str, fresh_db: asyncpg.Connection) -> None:
    async with server(empty_dsn, api_admin_keys="ops,web") as app:
        client = app.state.client
        sid = await talk(client, as_(ALICE), QUESTION)
        before = await rows_of(fresh_db, [sid])
        body = {"principal": "alice"}
        refused = [
            await forget(client, body, key=ALICE),  # not an admin key
            await client.post("/admin/forget", json=body, headers=as_(WEB, "user-1")),
            await client.post("/admin/forget", json=body),  # no key
        ]
        assert [r.status_code for r in refused] == [403, 403, 401]
        assert refused[0].json()["code"] == refused[1].json()["code"] == "forbidden"
        assert "API_ADMIN_KEYS" in refused[0].json()["message"]
        for bad in (
            {},
            {"principal": "no such/name"},
            {"principal": "alice", "user_id": "a b"},
            {"principal": "alice", "everything": True},
        ):
            response = await forget(client, bad)
            assert response.status_code == 422, (bad, response.text)
        assert await rows_of(fresh_db, [sid]) == before
        done = await forget(client, body, key=WEB)  # an admin, acting as itself
        assert done.json()["sessions_deleted"] == 1
        assert set((await rows_of(fresh_db, [sid])).values()) == {0}
    no_keys = {"api_keys": None, "api_gateway_keys": "", "api_admin_keys": ""}
    async with server(empty_dsn, **no_keys) as app:
        response = await forget(app.state.client, body)
        assert response.status_code == 403, response.text


async def test_with_a_turn_running_nothing_is_deleted(
    empty_dsn: str, fresh_db: asyncpg.Connection
) -> None:
    gate, started = asyncio.Event(), asyncio.Event()
    model = FakeModel(gate=gate, started=started, gate_from_call=3)
    async with server(empty_dsn, model=model) as app:
        client = app.state.client
        user = as_(WEB, "user-3")
        idle = await talk(client, user, "Hello")  # model call 1
        busy = await talk(client, user, "Hello")  # model call 2
        running = asyncio.create_task(talk_on(client, user, busy, "And again?"))
        await asyncio.wait_for(started.wait(), 30)
        before = await rows_of(fresh_db, [idle, busy])

        response = await forget(client, {"principal": "web", "user_id": "user-3"})
        assert response.status_code == 409, response.text
        body = response.json()
        assert body["code"] == "session_busy"
        assert body["details"] == [
            {"field": "session_id", "message": f"{busy} has a turn in progress"}
        ]
        assert "Nothing was deleted" in body["message"]
        after = await rows_of(fresh_db, [idle, busy])
        assert {t: n for t, n in after.items() if t != "turn_events"} == {
            t: n
            for t, n in before.items()
            if t != "turn_events"  # the running turn's own
        }
        assert (
            await fresh_db.fetchval(  # the claim of the idle one was let go
                "SELECT count(*) FROM turn_leases WHERE session_id = $1", uuid.UUID(idle)
            )
            == 0
        )

        gate.set()
        await running
        response = await forget(client, {"principal": "web", "user_id": "user-3"})
        assert response.json()["sessions_deleted"] == 2
        await assert_nothing_left(fresh_db, [idle, busy], "web", "user-3")


async def talk_on(
    client: httpx.AsyncClient, headers: dict[str, str], sid: str, message: str
) -> None:
    async with client.stream(
        "POST", "/chat", json={"session_id": sid, "message": message}, headers=headers
    ) as response:
        await response.aread()
        assert response.status_code == 200


async def test_forgetting_a_principal_takes_all_its_users_and_the_default_its_unowned(
    empty_dsn: str, fresh_db: asyncpg.Connection
) -> None:
    async with server(empty_dsn, api_key=DEFAULT) as app:
        client = app.state.client
        webs = [
            await talk(client, as_(WEB, "user-4"), "Hello"),
            await talk(client, as_(WEB, "user-5"), "Hello"),
            await talk(client, as_(WEB), "Hello"),
        ]
        alice = await talk(client, as_(ALICE), "Hello")
        mine = await talk(client, as_(DEFAULT), "Hello")
        studio = str(uuid.uuid4())  # written without the API: the default principal's
        await app.state.runner.graph.ainvoke(
            {"messages": [HumanMessage("hi")]}, {"configurable": {"thread_id": studio}}
        )
        response = await forget(client, {"principal": "web"})
        assert response.json()["sessions_deleted"] == 3
        await assert_nothing_left(fresh_db, webs, "web", "user-4")
        response = await forget(client, {"principal": "default"})
        assert response.json()["sessions_deleted"] == 2
        await assert_nothing_left(fresh_db, [mine, studio], "default", "")
        assert (await rows_of(fresh_db, [alice]))["conversations"] == 1
