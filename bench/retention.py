"""`python -m bench.retention [--full]`: checkpoint retention "latest 10" on two workloads,
live and on-disk bytes against the same run without retention and against the official
`AsyncPostgresSaver` (as is, and pruned by its own `aprune(keep_latest)` as often).

Workloads: one long chat conversation (one-node graph, 20-60 word answers), and 30
concurrent conversations of tool turns (`bench.workload.tool_graph`: model, tool, model).
Retention runs as the workers run it, a pass every `--every` turns of each conversation
(`aretain_due`), and once at the end. The default is scaled down for a shared 2-core
machine (300 turns; 30 x 50 tool turns); `--full` runs 1,000 turns and 30 x 150.

Every run is on a private PostgreSQL with default settings (autovacuum on, as in
production; `bench.private_server`). Live bytes are the rows as stored (`pg_column_size`:
TOAST included, compressed as it is); on disk is `pg_total_relation_size` of the saver's
tables at the end of the run (what autovacuum left: freed space reused, files not shrunk),
then after VACUUM FULL.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg
from langchain_core.messages import HumanMessage

from bench.private_server import default_settings_server
from bench.report import simple_table
from bench.savers import TABLES, ask, chat_graph, fresh_database, saver_for, sentence
from bench.timing import Stopwatch
from bench.workload import tool_graph
from src.agent.memory.retention import RetentionPolicy

LATEST_10 = RetentionPolicy(keep_latest=10)
TRANSCRIPT = ("conversations", "conversation_messages", "transcript_heads")
MACHINERY = ("checkpoints", "checkpoint_blobs", "checkpoint_writes", "checkpoint_retention")
VARIANTS = ("ours", "ours, latest 10", "official", "official, aprune keep_latest")


@dataclass
class Sizes:
    """One run's bytes: live rows per table, on disk at the end (autovacuum only) and after
    VACUUM FULL, the checkpoints left, and the workload's seconds."""

    live: dict[str, int]
    disk: int
    compact: int
    checkpoints: int
    seconds: float

    @property
    def total(self) -> int:
        return sum(self.live.values())


async def _sizes(conn: asyncpg.Connection, kind: str, seconds: float) -> Sizes:
    tables = TABLES[kind] + (["checkpoint_retention"] if kind == "ours" else [])
    live = {
        t: int(await conn.fetchval(f"SELECT COALESCE(sum(pg_column_size(t.*)), 0) FROM {t} AS t"))
        for t in tables
    }
    count = int(await conn.fetchval("SELECT count(*) FROM checkpoints"))
    disk_sql = "SELECT SUM(pg_total_relation_size(t)) FROM unnest($1::regclass[]) t"
    disk = int(await conn.fetchval(disk_sql, tables))
    await conn.execute("VACUUM FULL")
    compact = int(await conn.fetchval(disk_sql, tables))
    return Sizes(live, disk, compact, count, seconds)


async def _prune(saver: Any, variant: str, threads: list[str]) -> None:
    if variant == "ours, latest 10":
        await saver.aretain_due(LATEST_10, limit=len(threads) + 1)
    elif variant == "official, aprune keep_latest":
        await saver.aprune(threads, strategy="keep_latest")


async def run(
    variant: str, conversations: int, turns: int, every: int, tools: bool, server: str
) -> Sizes:
    """`conversations` concurrent conversations of `turns` turns with `variant`'s saver and
    pruning, on a fresh database of `server` (an admin DSN)."""
    kind = "ours" if variant.startswith("ours") else "official"
    async with fresh_database(server) as dsn, saver_for(kind, dsn) as saver:
        graph = tool_graph(saver, seed=3) if tools else chat_graph(saver)
        threads = [str(uuid.uuid4()) for _ in range(conversations)]
        rngs = [random.Random(i) for i in range(conversations)]

        async def turn(i: int) -> None:
            if tools:
                question = HumanMessage(f"price of {sentence(rngs[i], 8)}")
                config = {"configurable": {"thread_id": threads[i]}}
                await graph.ainvoke({"messages": [question]}, config)
            else:
                await ask(graph, threads[i], rngs[i])

        started = time.perf_counter()
        for n in range(1, turns + 1):
            await asyncio.gather(*(turn(i) for i in range(conversations)))
            if n % every == 0 or n == turns:
                await _prune(saver, variant, threads)
        seconds = time.perf_counter() - started
        conn = await asyncpg.connect(dsn)
        try:
            return await _sizes(conn, kind, seconds)
        finally:
            await conn.close()


def _kib(n: float) -> str:
    return f"{n / 1024:,.0f}"


def table(title: str, runs: dict[str, Sizes], conversations: int) -> str:
    """The four variants side by side, per conversation."""
    plain = runs["ours"]
    rows: list[tuple[str, ...]] = []
    for variant, s in runs.items():
        transcript = sum(v for t, v in s.live.items() if t in TRANSCRIPT)
        rows.append(
            (
                variant,
                _kib(transcript / conversations),
                _kib(sum(s.live.get(t, 0) for t in MACHINERY) / conversations),
                _kib(s.total / conversations),
                f"{s.total / plain.total:.3f}",
                _kib(s.disk / conversations),
                _kib(s.compact / conversations),
                f"{s.checkpoints / conversations:,.0f}",
                f"{s.seconds:,.1f}",
            )
        )
    header = (
        "saver",
        "transcript KiB",
        "checkpoints+blobs+writes KiB",
        "live KiB",
        "live vs ours",
        "disk KiB (autovacuum)",
        "disk KiB (VACUUM FULL)",
        "checkpoints",
        "run s",
    )
    return f"### {title} (per conversation)\n\n" + simple_table(header, rows)


def bound(runs: dict[str, Sizes], conversations: int, turns: int) -> str:
    """The bound retention gives: transcript + N checkpoints' share of the machinery, with
    the bytes per checkpoint measured on the run without retention."""
    plain, kept = runs["ours"], runs["ours, latest 10"]
    per_checkpoint = sum(plain.live.get(t, 0) for t in MACHINERY) / plain.checkpoints
    transcript = sum(kept.live[t] for t in TRANSCRIPT)
    expected = transcript + per_checkpoint * kept.checkpoints
    return (
        f"bound: transcript {_kib(transcript / conversations)} KiB + "
        f"{kept.checkpoints / conversations:.0f} checkpoints x {per_checkpoint / 1024:.2f} KiB "
        f"= {_kib(expected / conversations)} KiB per conversation; measured "
        f"{_kib(kept.total / conversations)} KiB ({kept.total / expected:.2f} of the bound), "
        f"after {turns} turns"
    )


# `sessions` sessions pruned by LATEST_10 since their head last moved: none is due.
PLANT_UP_TO_DATE = """
WITH s AS (SELECT gen_random_uuid() AS sid FROM generate_series(1, $1)),
c AS (INSERT INTO conversations (session_id) SELECT sid FROM s),
h AS (INSERT INTO transcript_heads (session_id, checkpoint_id) SELECT sid, 'head' FROM s)
INSERT INTO checkpoint_retention (session_id, head, policy) SELECT sid, 'head', $2 FROM s"""


async def pass_cost(sessions: int) -> str:
    """The time of a pass over `sessions` sessions none of which is due (what each worker
    pays after every TTL sweep once everything is pruned)."""
    async with (
        default_settings_server() as server,
        fresh_database(server.dsn) as dsn,
        saver_for("ours", dsn) as saver,
    ):
        await saver.store.pool.execute(PLANT_UP_TO_DATE, sessions, LATEST_10.label)
        await saver.store.pool.execute("ANALYZE")
        started = time.perf_counter()
        done = await saver.aretain_due(LATEST_10)
        ms = (time.perf_counter() - started) * 1000
    return f"a pass over {sessions:,} sessions, none due: {ms:.0f} ms ({done.sessions} pruned)"


async def main(full: bool, every: int, only: str | None) -> None:
    long_turns, tool_turns = (1000, 150) if full else (300, 50)
    workloads = {
        "long": (f"One conversation of {long_turns} turns", 1, long_turns, False),
        "tools": (f"30 conversations of {tool_turns} tool turns", 30, tool_turns, True),
    }
    watch = Stopwatch("bench.retention")
    if only in (None, "pass"):
        with watch.section("a pass over 20,000 sessions"):
            print(await pass_cost(20_000) + "\n", flush=True)
    for name, (title, conversations, turns, tools) in workloads.items():
        if only is not None and name != only:
            continue
        async with default_settings_server() as server:
            if not server.autovacuum_on:
                print("(no private server: the shared one, autovacuum off)")
            runs = {}
            for v in VARIANTS:
                with watch.section(f"{title}: {v}"):
                    runs[v] = await run(v, conversations, turns, every, tools, server.dsn)
        print(table(title, runs, conversations) + "\n", flush=True)
        print(bound(runs, conversations, turns) + "\n", flush=True)
    watch.report()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--full", action="store_true", help="1,000 turns and 30 x 150")
    parser.add_argument("--every", type=int, default=10, help="turns between retention passes")
    parser.add_argument("--only", choices=("long", "tools", "pass"), help="one workload only")
    args = parser.parse_args()
    asyncio.run(main(args.full, args.every, args.only))
