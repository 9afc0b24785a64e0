"""`python -m bench.data_life`: the figures of docs/data-lifecycle.md. What a session stores
per turn, table by table, through the real API (offline model, in-process uvicorn, a fresh
database on BENCH_DATABASE_URL's server), and what the TTL sweep costs. Prints Markdown.

    python -m bench.data_life [--sessions 20] [--turns 1,10,50] [--idle 20000]

Turns alternate a tool turn (a weather question: 4 messages) and a plain one (2 messages).
"Live" bytes are the rows as stored (pg_column_size: TOAST included, compressed as it is);
"on disk" is pg_total_relation_size (heap, TOAST, indexes, free space) after the run, then
after VACUUM FULL (compacted).
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from typing import Any

import asyncpg
import httpx

from bench.report import simple_table
from bench.savers import SERVER
from src.api.app import create_app
from tests.api_harness import chat, serve, settings_for
from tests.fakes import FakeModel
from tests.support import fresh_database

TABLES = [
    "conversations",
    "conversation_messages",
    "transcript_heads",
    "checkpoints",
    "checkpoint_blobs",
    "checkpoint_writes",
    "session_owners",
    "turn_events",
]
CITIES = [
    "Montevideo",
    "Lima",
    "Quito",
    "Bogota",
    "Santiago",
    "Madrid",
    "Lisbon",
    "Oslo",
    "Nairobi",
    "Osaka",
    "Denver",
    "Austin",
    "Porto",
    "Cusco",
    "Rosario",
    "Salta",
]
NAMES = ["Ana", "Bruno", "Carla", "Diego", "Elena", "Fabio", "Gala", "Hugo"]


def question(session: int, turn: int) -> str:
    """A tool turn (the weather of a city) or a plain one (a name and a note), varied as
    people's messages are, so that compression does not flatter the figures."""
    if turn % 2 == 0:
        return f"What's the weather in {CITIES[(session + turn) % len(CITIES)]}?"
    note = uuid.uuid4().hex[: 8 + turn % 24]
    return f"My name is {NAMES[(session * 3 + turn) % len(NAMES)]}; remember {note}, please."


async def _live(db: asyncpg.Connection) -> dict[str, int]:
    return {
        t: await db.fetchval(f"SELECT COALESCE(sum(pg_column_size(t.*)), 0) FROM {t} AS t")
        for t in TABLES
    }


async def _disk(db: asyncpg.Connection) -> int:
    return sum(
        [await db.fetchval("SELECT pg_total_relation_size($1::regclass)", t) for t in TABLES]
    )


def _kib(n: float) -> str:
    return f"{n / 1024:,.1f}"


async def per_turn(sessions: int, turns: int) -> dict[str, Any]:
    """`sessions` conversations of `turns` turns each, on a fresh database."""
    async with fresh_database(SERVER, "vera_bench_life") as dsn:
        app = create_app(settings_for(dsn, rate_limit_per_minute=10**6), model=FakeModel())
        db = await asyncpg.connect(dsn)
        try:
            async with serve(app) as url, httpx.AsyncClient(base_url=url, timeout=60) as client:
                sids = [str(uuid.uuid4()) for _ in range(sessions)]
                for turn in range(turns):
                    await asyncio.gather(
                        *(chat(client, sid, question(i, turn)) for i, sid in enumerate(sids))
                    )
            live = await _live(db)
            messages = await db.fetchval(
                "SELECT sum(jsonb_array_length(messages)) FROM conversations"
            )
            disk = await _disk(db)
            await db.execute("VACUUM FULL")
            compact = await _disk(db)
        finally:
            await db.close()
    return {
        "live": live,
        "disk": disk,
        "compact": compact,
        "messages": messages,
        "sessions": sessions,
        "turns": turns,
    }


async def sweep_cost(idle: int, expired: int) -> list[tuple[str, str]]:
    """A sweep over `idle` sessions none of which is due, then one deleting `expired`
    sessions of 10 turns (copies of one made through the API)."""
    async with fresh_database(SERVER, "vera_bench_sweep") as dsn:
        settings = settings_for(dsn, session_ttl_minutes=60, session_ttl_sweep_limit=10**6)
        app = create_app(settings, model=FakeModel())
        db = await asyncpg.connect(dsn)
        rows = []
        try:
            async with serve(app) as url, httpx.AsyncClient(base_url=url, timeout=60) as client:
                model_sid = str(uuid.uuid4())
                for turn in range(10):
                    await chat(client, model_sid, question(0, turn))
                checkpointer = app.state.checkpointer
                copies = [str(uuid.uuid4()) for _ in range(idle)]
                for start in range(0, idle, 200):
                    await asyncio.gather(
                        *(
                            checkpointer.acopy_thread(model_sid, c)
                            for c in copies[start : start + 200]
                        )
                    )
                await db.execute(
                    "INSERT INTO session_owners (session_id, principal, title) "
                    "SELECT s, 'default', 'copy' FROM unnest($1::uuid[]) AS s",
                    [uuid.UUID(c) for c in copies],
                )
                await db.execute("VACUUM ANALYZE")
                sweeper = app.state.sweeper
                started = time.perf_counter()
                swept = await sweeper.sweep()
                rows.append(
                    (
                        f"sweep, {idle:,} sessions, none due",
                        f"{(time.perf_counter() - started) * 1000:,.0f} ms",
                    )
                )
                assert not swept.session_ids
                due = [uuid.UUID(c) for c in copies[:expired]]
                await db.execute(
                    "UPDATE session_owners SET updated_at = NOW() - interval '2 hours' "
                    "WHERE session_id = ANY($1::uuid[])",
                    due,
                )
                await db.execute(
                    "UPDATE conversations SET updated_at = LOCALTIMESTAMP - interval '2 hours' "
                    "WHERE session_id = ANY($1::uuid[])",
                    due,
                )
                started = time.perf_counter()
                swept = await sweeper.sweep()
                seconds = time.perf_counter() - started
                assert len(swept.session_ids) == expired
                rate = (
                    f"{expired / seconds:,.0f} sessions/s, {_kib(swept.bytes / expired)} KiB each"
                )
                took = f"{seconds * 1000:,.0f} ms ({rate})"
                rows.append((f"sweep deleting {expired:,} sessions of 10 turns", took))
        finally:
            await db.close()
    return rows


async def main(sessions: int, turn_counts: list[int], idle: int) -> None:
    runs = [await per_turn(sessions, turns) for turns in turn_counts]
    header = ("table", *(f"{r['turns']} turns: KiB/session" for r in runs), "KiB/turn (last run)")
    body = []
    last = runs[-1]
    for table in TABLES:
        cells = [_kib(r["live"][table] / r["sessions"]) for r in runs]
        body.append((table, *cells, _kib(last["live"][table] / last["sessions"] / last["turns"])))
    totals = [sum(r["live"].values()) / r["sessions"] for r in runs]
    body.append(
        ("**all, live rows**", *(_kib(t) for t in totals), _kib(totals[-1] / last["turns"]))
    )
    body.append(
        (
            "on disk after the run",
            *(_kib(r["disk"] / r["sessions"]) for r in runs),
            _kib(last["disk"] / last["sessions"] / last["turns"]),
        )
    )
    body.append(
        (
            "on disk after VACUUM FULL",
            *(_kib(r["compact"] / r["sessions"]) for r in runs),
            _kib(last["compact"] / last["sessions"] / last["turns"]),
        )
    )
    body.append(
        ("messages per session", *(f"{r['messages'] / r['sessions']:.0f}" for r in runs), "")
    )
    print(f"### Bytes per session ({sessions} sessions per run)\n")
    print(simple_table(header, body))
    print("\n### The TTL sweep\n")
    print(simple_table(("what", "time"), await sweep_cost(idle, expired=min(1000, idle))))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--turns", default="1,10,50")
    parser.add_argument("--idle", type=int, default=20_000)
    args = parser.parse_args()
    asyncio.run(main(args.sessions, [int(t) for t in args.turns.split(",")], args.idle))
