"""A turn after its client left: `GET /sessions/{id}/turns/{turn_id}` says how it stands,
and `GET .../events` replays its stream after `Last-Event-ID` and follows it live until it
ends, from another worker than the one running it."""

from __future__ import annotations

import asyncio
import json
import uuid

import asyncpg

from tests.api_harness import QUESTION, parse_sse, send, settings_for, wait_until, worker
from tests.fakes import FakeModel
from tests.pgbouncer import Pooler


async def lease_gone(dsn: str, sid: str) -> bool:
    conn = await asyncpg.connect(dsn)
    try:
        held = await conn.fetchval(
            "SELECT count(*) FROM turn_leases WHERE session_id = $1", uuid.UUID(sid)
        )
    finally:
        await conn.close()
    return held == 0


async def test_a_client_that_dropped_replays_and_follows_its_turn_on_another_worker(
    database_dsn: str, pooler: Pooler
) -> None:
    """Through PgBouncer the follower is woken by its one-second poll, not by a NOTIFY
    (`test_pgbouncer_limits.py`)."""
    settings = pooler.settings(database_dsn)
    gate, started = asyncio.Event(), asyncio.Event()
    async with (
        worker(settings, FakeModel(gate=gate, started=started)) as (_, running_on),
        worker(settings, FakeModel()) as (_, other),
    ):
        sid, turn_id = str(uuid.uuid4()), "trip-7"
        body = {"session_id": sid, "message": QUESTION, "turn_id": turn_id}
        async with running_on.stream("POST", "/chat", json=body) as response:
            async for line in response.aiter_lines():
                if line.startswith("id: "):
                    last_id = line[4:]
                    break  # the connection drops after the first event
        assert last_id == f"{turn_id}:1"
        await asyncio.wait_for(started.wait(), 10)

        status = (await other.get(f"/sessions/{sid}/turns/{turn_id}")).json()
        assert status["status"] == "running" and status["last_event_id"] == last_id

        async def follow() -> str:
            async with other.stream(
                "GET",
                f"/sessions/{sid}/turns/{turn_id}/events",
                headers={"Last-Event-ID": last_id},
            ) as followed:
                assert followed.status_code == 200
                return (await followed.aread()).decode()

        following = asyncio.create_task(follow())
        gate.set()  # the model answers; the rest of the turn streams live to the follower
        events = parse_sse(await asyncio.wait_for(following, 30))[0]
        names = [e.event for e in events]
        assert names[0] == "tool_call" and names[-1] == "done" and "session" not in names
        assert [e.id for e in events] == [f"{turn_id}:{n}" for n in range(2, len(events) + 2)]

        done = (await other.get(f"/sessions/{sid}/turns/{turn_id}")).json()
        answer = "".join(e.data["content"] for e in events if e.event == "token")
        assert done["status"] == "done" and done["answer"] == answer
        assert done["usage"] == events[-1].data["usage"]
        # The whole stream again, from the start, after it ended.
        again = await other.get(f"/sessions/{sid}/turns/{turn_id}/events")
        replayed = parse_sse(again.text)[0]
        assert [e.event for e in replayed] == ["session", *names]
        # A later attempt of the same turn (a replay of its answer) numbers on. (The done
        # event is stored before the first worker lets the session go: wait for that.)
        await wait_until(lambda: lease_gone(database_dsn, sid))
        replay = await send(other, sid, QUESTION, turn_id=turn_id)
        assert replay[0].id == f"{turn_id}:{len(events) + 2}"
        # ... and is stored like any attempt: a client that drops mid-replay can follow it.
        status = (await other.get(f"/sessions/{sid}/turns/{turn_id}")).json()
        assert status["last_event_id"] == replay[-1].id and status["answer"] == answer


async def test_unknown_stopped_and_malformed_turn_queries(database_dsn: str) -> None:
    async with worker(settings_for(database_dsn), FakeModel()) as (_, client):
        sid = str(uuid.uuid4())
        unknown = await client.get(f"/sessions/{sid}/turns/nope")
        assert unknown.status_code == 404 and unknown.json()["code"] == "not_found"
        # A worker that died mid-turn: events without an end, and no lease any more.
        conn = await asyncpg.connect(database_dsn)
        try:
            await conn.execute(
                "INSERT INTO turn_events (session_id, turn_id, seq, event, data) VALUES "
                "($1, 't', 1, 'session', $2), ($1, 't', 2, 'token', $3)",
                uuid.UUID(sid),
                json.dumps({"session_id": sid}),
                json.dumps({"content": "Hel"}),
            )
        finally:
            await conn.close()
        status = (await client.get(f"/sessions/{sid}/turns/t")).json()
        assert status["status"] == "interrupted" and status["answer"] == "Hel"
        events = await client.get(f"/sessions/{sid}/turns/t/events", params={"after": 1})
        assert [e.event for e in parse_sse(events.text)[0]] == ["token"]  # then it ends
        for headers, params in [
            ({"Last-Event-ID": "other:3"}, {}),
            ({"Last-Event-ID": "t:2147483648"}, {}),  # past the event numbers' range
            ({"Last-Event-ID": "t:\u00b2".encode("latin-1")}, {}),  # a digit int() refuses
            ({}, {"after": 2**31}),
        ]:
            wrong = await client.get(
                f"/sessions/{sid}/turns/t/events", headers=headers, params=params
            )
            assert wrong.status_code == 422 and wrong.json()["code"] == "invalid_request", headers
        for path in ["a%00b", "a%00b/events", "x" * 65]:
            bad = await client.get(f"/sessions/{sid}/turns/{path}")
            assert bad.status_code == 422 and bad.json()["code"] == "invalid_request", path


async def test_events_with_nul_and_lone_surrogates_are_stored_and_read_back(store) -> None:
    """A token may carry any text the model produced; JSONB refuses NUL and lone
    surrogates, so they are stored escaped and read back unchanged."""
    from src.api.turn_events import TurnEventLog

    log = TurnEventLog(store)
    sid, text = uuid.uuid4(), "nul \x00 and lone \ud800 surrogate"
    await log.write(sid, "t", [(1, "token", {"content": text})])
    [event] = await log.events_after(sid, "t", 0)
    assert event.data == {"content": text}
