"""Sessions belong to their caller (issue 12, points 1 and 2): principals from API keys,
gateway end users, and `GET /sessions`."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import httpx
import pytest

from src.api.app import create_app
from src.config.settings import SettingsError
from tests.api_harness import chat, serve, settings_for

ALICE = "alice-key-0123456789abcdefghijklmnop"
BOB = "bob-key-0123456789abcdefghijklmnopqrs"
GATEWAY = "gateway-key-0123456789abcdefghijklmno"
KEYS = f"alice:{ALICE},bob:{BOB},web:{GATEWAY}"


@asynccontextmanager
async def clients(dsn: str, **overrides: object) -> AsyncIterator[dict[str, httpx.AsyncClient]]:
    """One client per caller: alice, bob, and two end users of the `web` gateway."""
    settings = settings_for(
        dsn, api_keys=KEYS, api_gateway_keys="web", rate_limit_per_minute=1000, **overrides
    )
    headers = {
        "alice": {"X-API-Key": ALICE},
        "bob": {"X-API-Key": BOB},
        "web-u1": {"X-API-Key": GATEWAY, "X-User-Id": "u1"},
        "web-u2": {"X-API-Key": GATEWAY, "X-User-Id": "u2"},
    }
    async with serve(create_app(settings)) as url:
        made = {
            name: httpx.AsyncClient(base_url=url, headers=h, timeout=30)
            for name, h in headers.items()
        }
        try:
            yield made
        finally:
            for client in made.values():
                await client.aclose()


def every_request(sid: str, turn_id: str) -> list[tuple[str, str, dict]]:
    body = {"session_id": sid, "message": "what is mine?"}
    return [
        ("POST", "/chat", {"json": body}),
        ("POST", "/chat/complete", {"json": body}),
        ("GET", f"/sessions/{sid}/messages", {}),
        ("GET", f"/sessions/{sid}/turns/{turn_id}", {}),
        ("GET", f"/sessions/{sid}/turns/{turn_id}/events", {}),
        ("POST", f"/sessions/{sid}/turns/{turn_id}/cancel", {}),
        ("DELETE", f"/sessions/{sid}", {}),
    ]


async def listed(client: httpx.AsyncClient) -> list[str]:
    response = await client.get("/sessions")
    assert response.status_code == 200, response.text
    return [s["session_id"] for s in response.json()["sessions"]]


@pytest.mark.parametrize(("owner", "other"), [("alice", "bob"), ("web-u1", "web-u2")])
async def test_another_principal_can_not_read_list_continue_or_delete(
    database_dsn: str, db: asyncpg.Connection, owner: str, other: str
) -> None:
    async with clients(database_dsn) as c:
        sid = str(uuid.uuid4())
        earlier = await listed(c[owner])  # other tests' sessions in this database
        events = await chat(c[owner], sid, "Hello, this is private")
        assert events[-1].event == "done"
        turn_id = events[0].data["turn_id"]
        before = await db.fetchval(
            "SELECT messages::text FROM conversations WHERE session_id = $1", uuid.UUID(sid)
        )
        for method, path, kwargs in every_request(sid, turn_id):
            response = await c[other].request(method, path, **kwargs)
            assert response.status_code == 404, (other, method, path, response.text)
            assert response.json()["code"] == "not_found"
        assert sid not in await listed(c[other])
        # Nothing changed, and the owner still has all of it.
        after = await db.fetchval(
            "SELECT messages::text FROM conversations WHERE session_id = $1", uuid.UUID(sid)
        )
        assert after == before
        assert await listed(c[owner]) == [sid, *earlier]
        for method, path, kwargs in every_request(sid, turn_id)[2:]:
            response = await c[owner].request(method, path, **kwargs)
            assert response.status_code in (200, 204), (method, path, response.text)


async def test_an_unknown_session_id_and_a_foreign_one_answer_the_same(
    database_dsn: str,
) -> None:
    async with clients(database_dsn) as c:
        sid = str(uuid.uuid4())
        await chat(c["alice"], sid, "mine")
        foreign = await c["bob"].get(f"/sessions/{sid}/messages")
        unknown_id = uuid.uuid4()
        unknown = await c["bob"].get(f"/sessions/{unknown_id}/messages")
        assert foreign.status_code == unknown.status_code == 404
        assert foreign.json()["message"].replace(sid, "X") == unknown.json()["message"].replace(
            str(unknown_id), "X"
        )


async def test_user_id_is_refused_from_a_key_that_is_not_a_gateway(database_dsn: str) -> None:
    async with clients(database_dsn) as c:
        response = await c["alice"].get("/sessions", headers={"X-User-Id": "someone"})
        assert response.status_code == 403
        assert response.json()["code"] == "forbidden"
        bad = await c["web-u1"].get("/sessions", headers={"X-User-Id": "has space"})
        assert bad.status_code == 400


async def test_gateway_without_user_id_is_its_own_principal(database_dsn: str) -> None:
    async with clients(database_dsn) as c:
        sid = str(uuid.uuid4())
        await chat(c["web-u1"], sid, "u1's question")
        plain = httpx.AsyncClient(base_url=c["web-u1"].base_url, headers={"X-API-Key": GATEWAY})
        async with plain:
            assert await listed(plain) == []
            assert (await plain.get(f"/sessions/{sid}/messages")).status_code == 404


def test_api_keys_are_validated_at_start(database_dsn: str) -> None:
    for keys, problem in [
        ("alice", "name:key"),
        ("al ice:xyz", "name:key"),
        (f"alice:{ALICE},alice:{BOB}", "once"),
        ("alice:clé-non-ascii", "printable ASCII"),
    ]:
        with pytest.raises(SettingsError, match=problem):
            create_app(settings_for(database_dsn, api_keys=keys))
    with pytest.raises(SettingsError, match="API_GATEWAY_KEYS"):
        create_app(settings_for(database_dsn, api_keys=KEYS, api_gateway_keys="nobody"))


async def test_session_list_newest_first_with_titles_counts_and_stable_pages(
    empty_dsn: str,
) -> None:
    async with clients(empty_dsn) as c:
        sids = [str(uuid.uuid4()) for _ in range(5)]
        for n, sid in enumerate(sids):
            await chat(c["alice"], sid, f"Question number {n}\nsecond line " + "x" * 200)
        await chat(c["alice"], sids[0], "a second turn moves it to the top")
        first = (await c["alice"].get("/sessions", params={"limit": 2})).json()
        assert [s["session_id"] for s in first["sessions"]] == [sids[0], sids[4]]
        top = first["sessions"][0]
        assert top["title"].startswith("Question number 0 second line xxx")
        assert len(top["title"]) == 80 and top["title"].endswith("…")
        assert top["message_count"] == 4
        assert first["sessions"][1]["message_count"] == 2
        assert top["updated_at"] > top["created_at"]
        # A session created between two pages shows up on the first page, not twice.
        newcomer = str(uuid.uuid4())
        await chat(c["alice"], newcomer, "new while paging")
        seen = [s["session_id"] for s in first["sessions"]]
        cursor = first["next_cursor"]
        while cursor:
            page = (await c["alice"].get("/sessions", params={"limit": 2, "cursor": cursor})).json()
            seen += [s["session_id"] for s in page["sessions"]]
            cursor = page["next_cursor"]
        assert seen == [sids[0], sids[4], sids[3], sids[2], sids[1]]
        assert (await listed(c["alice"]))[0] == newcomer
        assert await listed(c["bob"]) == []
        bad = await c["alice"].get("/sessions", params={"cursor": "bm90LWEtY3Vyc29y"})
        assert bad.status_code == 422 and "cursor" in bad.json()["message"]
        far = await c["alice"].get("/sessions", params={"cursor": "1-" + "0" * 32})
        assert far.json() == {"sessions": [], "next_cursor": None}
        assert bad.status_code == 422 and "cursor" in bad.json()["message"]


async def test_session_list_is_read_from_its_index(
    database_dsn: str, db: asyncpg.Connection
) -> None:
    await db.execute(
        """
        INSERT INTO session_owners (session_id, principal, user_id, title, updated_at)
        SELECT gen_random_uuid(), 'p' || (i % 4), '', 'title ' || i,
               NOW() - make_interval(secs => i)
        FROM generate_series(1, 20000) AS i
        """
    )
    await db.execute("ANALYZE session_owners")
    from src.api import sql

    cursor_time = await db.fetchval("SELECT NOW() - interval '2 hours'")
    for query, args in [
        (sql.LIST_SESSIONS_FIRST, ["p1", "", 21]),
        (sql.LIST_SESSIONS_AFTER, ["p1", "", 21, cursor_time, uuid.UUID(int=0)]),
    ]:
        plan = "\n".join(r[0] for r in await db.fetch("EXPLAIN (ANALYZE, BUFFERS) " + query, *args))
        assert "idx_session_owners_list" in plan, plan
        assert "Sort" not in plan and "Seq Scan on session_owners" not in plan, plan
    await db.execute("DELETE FROM session_owners WHERE title LIKE 'title %'")


async def test_sessions_from_before_ownership_belong_to_the_default_key(
    database_dsn: str, db: asyncpg.Connection
) -> None:
    # A session written without the API (Studio) has no owner row: the default principal
    # (API_KEY) sees it, a named one does not and can not take it over.
    sid = uuid.uuid4()
    await db.execute(
        "INSERT INTO conversations (session_id, messages) VALUES ($1, '[]'::jsonb)", sid
    )
    default_key = "default-key-0123456789abcdefghijklm"
    async with clients(database_dsn, api_key=default_key) as c:
        assert (await c["alice"].get(f"/sessions/{sid}/messages")).status_code == 404
        response = await c["alice"].post(
            "/chat/complete", json={"session_id": str(sid), "message": "mine now?"}
        )
        assert response.status_code == 404
        mine = await c["alice"].get(f"/sessions/{sid}/messages", headers={"X-API-Key": default_key})
        assert mine.status_code == 200
