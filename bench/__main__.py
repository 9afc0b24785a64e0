"""`python -m bench [--quick]`: ours vs the official AsyncPostgresSaver on one chat graph.

Each saver gets its own fresh database on the same server (BENCH_DATABASE_URL, else the
local 127.0.0.1:5432). Prints a table; the full run also writes docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import statistics
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
from langchain_core.messages import AIMessage, HumanMessage
from langgraph.graph import END, START, MessagesState, StateGraph

from src.agent.memory import ConversationCheckpointer, PostgresMemoryStore

WORDS = [
    "market",
    "price",
    "stock",
    "bond",
    "yield",
    "rate",
    "inflation",
    "dividend",
    "earnings",
    "quarter",
    "revenue",
    "growth",
    "weather",
    "rain",
    "sunny",
    "cloud",
    "wind",
    "Montevideo",
    "London",
    "Tokyo",
    "portfolio",
    "risk",
    "return",
    "index",
    "fund",
    "currency",
    "dollar",
    "euro",
    "peso",
    "exchange",
    "forecast",
    "analyst",
    "report",
    "volatility",
    "hedge",
    "option",
]
SERVER = os.environ.get("BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
TABLES = {
    "ours": ["conversations", "checkpoints", "checkpoint_blobs", "checkpoint_writes"],
    "official": ["checkpoints", "checkpoint_blobs", "checkpoint_writes"],
}


def sentence(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n)) + f" {rng.randrange(10**6)}."


def chat_graph(checkpointer):
    rng = random.Random(7)

    def reply(state: MessagesState) -> dict:
        return {"messages": [AIMessage(sentence(rng, rng.randint(20, 60)))]}

    builder = StateGraph(MessagesState)
    builder.add_node("reply", reply)
    builder.add_edge(START, "reply")
    builder.add_edge("reply", END)
    return builder.compile(checkpointer=checkpointer)


def dsn_for(database: str) -> str:
    return urlunsplit(urlsplit(SERVER)._replace(path="/" + database))


@asynccontextmanager
async def fresh_database() -> AsyncIterator[str]:
    name = f"vera_bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(SERVER)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield dsn_for(name)
    finally:
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        await admin.close()


@asynccontextmanager
async def saver_for(kind: str, dsn: str) -> AsyncIterator[object]:
    if kind == "ours":
        store = PostgresMemoryStore(dsn, min_size=2, max_size=20)
        await store.initialize()
        try:
            yield ConversationCheckpointer(store)
        finally:
            await store.close()
    else:
        from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
        from psycopg.rows import dict_row
        from psycopg_pool import AsyncConnectionPool

        pool = AsyncConnectionPool(
            dsn, min_size=2, max_size=20, open=False,
            kwargs={"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row},
        )  # fmt: skip
        await pool.open()
        try:
            saver = AsyncPostgresSaver(pool)
            await saver.setup()
            yield saver
        finally:
            await pool.close()


async def conversation(graph, turns: int, rng: random.Random) -> list[float]:
    config = {"configurable": {"thread_id": str(uuid.uuid4())}}
    times = []
    for _ in range(turns):
        start = time.perf_counter()
        await graph.ainvoke({"messages": [HumanMessage(sentence(rng, 15))]}, config)
        times.append(time.perf_counter() - start)
    return times


async def measure(kind: str, turns: int, concurrent: int, conc_turns: int) -> dict[str, float]:
    async with fresh_database() as dsn, saver_for(kind, dsn) as saver:
        graph = chat_graph(saver)
        times = await conversation(graph, turns, random.Random(1))
        tenth = max(1, turns // 10)
        config = None
        async with asyncpg.create_pool(dsn, min_size=1, max_size=1) as pool:
            await pool.execute("VACUUM")
            size = await pool.fetchval(
                "SELECT SUM(pg_total_relation_size(t)) FROM unnest($1::regclass[]) t",
                TABLES[kind],
            )
            thread = await pool.fetchval("SELECT thread_id FROM checkpoints LIMIT 1")
        config = {"configurable": {"thread_id": str(thread)}}
        start = time.perf_counter()
        await graph.aget_state(config)
        get_state = time.perf_counter() - start
        start = time.perf_counter()
        history = [s async for s in graph.aget_state_history(config)]
        history_s = time.perf_counter() - start
        start = time.perf_counter()
        rngs = [random.Random(i) for i in range(concurrent)]
        await asyncio.gather(*(conversation(graph, conc_turns, r) for r in rngs))
        tps = concurrent * conc_turns / (time.perf_counter() - start)
    return {
        "first10_ms": statistics.median(times[:tenth]) * 1000,
        "last10_ms": statistics.median(times[-tenth:]) * 1000,
        "bytes": float(size),
        "get_state_ms": get_state * 1000,
        "history_ms": history_s * 1000,
        "history_len": float(len(history)),
        "turns_per_s": tps,
    }


def table(rows: list[tuple[str, float, float]]) -> str:
    lines = ["| figure | ours | official | ours/official |", "| --- | ---: | ---: | ---: |"]
    for name, ours, official in rows:
        lines.append(f"| {name} | {ours:,.1f} | {official:,.1f} | {ours / official:.3f} |")
    return "\n".join(lines)


async def main(quick: bool) -> str:
    sizes = [10, 20] if quick else [25, 100, 200]
    concurrent, conc_turns = (4, 5) if quick else (20, 25)
    out = []
    for turns in sizes:
        results = {k: await measure(k, turns, concurrent, conc_turns) for k in TABLES}
        o, f = results["ours"], results["official"]
        rows = [(name, o[key], f[key]) for name, key in [
            ("turn ms, first 10%", "first10_ms"), ("turn ms, last 10%", "last10_ms"),
            ("bytes stored (after VACUUM)", "bytes"), ("aget_state ms", "get_state_ms"),
            ("full state history ms", "history_ms"),
            (f"{concurrent} concurrent x {conc_turns} turns: turns/s", "turns_per_s"),
        ]]  # fmt: skip
        growth_o, growth_f = o["last10_ms"] / o["first10_ms"], f["last10_ms"] / f["first10_ms"]
        out.append(f"### {turns} turns ({int(o['history_len'])} checkpoints)\n\n{table(rows)}\n"
                   f"\nturn-time growth last/first 10%: ours {growth_o:.2f}x, "
                   f"official {growth_f:.2f}x\n")  # fmt: skip
        print(out[-1], flush=True)
    return "\n".join(out)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes, for CI")
    args = parser.parse_args()
    body = asyncio.run(main(args.quick))
    if not args.quick:
        header = (
            f"# Benchmarks\n\nRun: `make bench` on {datetime.now(UTC):%Y-%m-%d}, "
            f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
            f"langgraph {version('langgraph')}, langgraph-checkpoint-postgres "
            f"{version('langgraph-checkpoint-postgres')}, asyncpg {version('asyncpg')}.\n"
            "Graph: one-node chat graph, varied message text; each saver on a fresh database "
            "of the same server.\n\n"
        )
        Path("docs").mkdir(exist_ok=True)
        Path("docs/benchmarks.md").write_text(header + body)
