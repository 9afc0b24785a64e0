"""Another principal's session is an unknown id, for every principal (issue 23, point 12):
the default one (API_KEY) too gets the same answer for both, on every read."""

from __future__ import annotations

import uuid

import asyncpg
import httpx

from src.api.app import create_app
from tests.api_harness import chat, serve, settings_for

DEFAULT = "default-key-0123456789abcdefghijklmn"
ALICE = "alice-key-0123456789abcdefghijklmnop"


def reads(sid: str, turn_id: str) -> list[tuple[str, str]]:
    return [
        ("GET", f"/sessions/{sid}/messages"),
        ("GET", f"/sessions/{sid}/turns/{turn_id}"),
        ("GET", f"/sessions/{sid}/turns/{turn_id}/events"),
        ("DELETE", f"/sessions/{sid}"),
    ]


async def test_the_default_principal_can_not_tell_a_foreign_session_from_an_unknown_id(
    database_dsn: str, db: asyncpg.Connection
) -> None:
    settings = settings_for(database_dsn, api_key=DEFAULT, api_keys=f"someone:{ALICE}")
    async with serve(create_app(settings)) as url:
        alice = httpx.AsyncClient(base_url=url, headers={"X-API-Key": ALICE}, timeout=30)
        default = httpx.AsyncClient(base_url=url, headers={"X-API-Key": DEFAULT}, timeout=30)
        async with alice, default:
            sid = str(uuid.uuid4())
            turn_id = (await chat(alice, sid, "alice's question"))[0].data["turn_id"]
            unknown = str(uuid.uuid4())
            for (method, foreign_path), (_, unknown_path) in zip(
                reads(sid, turn_id), reads(unknown, turn_id), strict=True
            ):
                foreign = await default.request(method, foreign_path)
                missing = await default.request(method, unknown_path)
                assert foreign.status_code == missing.status_code == 404, foreign_path
                assert foreign.json() == {
                    **missing.json(),
                    "message": missing.json()["message"].replace(unknown, sid),
                }, foreign_path
    # Nothing was written for the unknown id (no lease taken to delete it, say).
    assert not await db.fetchval(
        "SELECT EXISTS (SELECT FROM session_owners WHERE session_id = $1)"
        " OR EXISTS (SELECT FROM turn_leases WHERE session_id = $1)",
        uuid.UUID(unknown),
    )
