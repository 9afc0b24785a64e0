"""A finished turn reads finished: the write of its last event (`done`, `error`) is retried
while the turn still holds its lease, so a write cut short (a connection the server drops,
as under load or a `pg_terminate_backend`) never leaves a turn whose answer is stored
reading `interrupted`, nor a resumed stream without its end (issue 23, point 5)."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import httpx

from src.api import sql
from src.api.turn_events import TERMINAL
from tests.api_harness import parse_sse, send, settings_for, worker
from tests.fakes import FakeModel


class CutTerminalWrites:
    """The app's store, but the first `times` writes of a batch holding a terminal event
    lose their connection (as when the server drops it mid-statement)."""

    def __init__(self, store: Any, times: int) -> None:
        self.store = store
        self.left = times

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    async def run(self, fn: Any) -> Any:
        return await self.store.run(lambda conn: fn(_Cutting(conn, self)))


class _Cutting:
    def __init__(self, conn: asyncpg.Connection, owner: CutTerminalWrites) -> None:
        self.conn = conn
        self.owner = owner

    def __getattr__(self, name: str) -> Any:
        return getattr(self.conn, name)

    async def execute(self, query: str, *args: Any) -> str:
        if query == sql.INSERT_EVENTS and TERMINAL & set(args[3]) and self.owner.left > 0:
            self.owner.left -= 1
            raise asyncpg.exceptions.ConnectionDoesNotExistError("cut by the test")
        result: str = await self.conn.execute(query, *args)
        return result


async def test_a_turn_whose_last_event_write_is_cut_reads_done_and_its_stream_ends(
    database_dsn: str,
) -> None:
    async with worker(settings_for(database_dsn), FakeModel()) as (app, client):
        log = app.state.runner.events
        # Two writes cut short (the store tries each twice, on a fresh connection).
        cut = CutTerminalWrites(log.store, times=4)
        log.store = cut
        sid = str(uuid.uuid4())
        events = await send(client, sid, "Hello", turn_id="t1")
        assert events[-1].event == "done"
        status = (await client.get(f"/sessions/{sid}/turns/t1")).json()
        assert status["status"] == "done", status
        assert cut.left == 0, "the terminal event's write was not cut as often as planned"
        assert status["message_id"] == events[-1].data["message_id"]
        resumed = await _resume(client, sid, "t1:1")
        assert resumed[-1].event == "done"
        assert [e.id for e in resumed] == [e.id for e in events[1:]]  # nothing lost or twice


async def _resume(client: httpx.AsyncClient, sid: str, last_event_id: str) -> list[Any]:
    response = await client.get(
        f"/sessions/{sid}/turns/t1/events", headers={"Last-Event-ID": last_event_id}
    )
    assert response.status_code == 200, response.text
    return parse_sse(response.text)[0]
