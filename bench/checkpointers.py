"""Our checkpointer against the official `AsyncPostgresSaver`: turn time, bytes, reads,
concurrency and the conformance capabilities, each saver on its own fresh database."""

from __future__ import annotations

import asyncio
import random
import statistics
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from bench.savers import (
    PAYLOAD_SQL,
    ask,
    chat_graph,
    fresh_database,
    saver_for,
    stored_bytes,
)


@dataclass
class Conversation:
    """One saver, one conversation of `turns` turns."""

    turn_s: list[float] = field(default_factory=list)
    other_runs: list[list[float]] = field(default_factory=list)  # turn times of repeats
    bytes_vacuumed: int = 0  # pg_total_relation_size after a plain VACUUM
    bytes_live: int = 0  # after VACUUM FULL: what the rows themselves take
    payload: int = 0  # uncompressed bytes of the stored values
    wal: int = 0  # WAL bytes the conversation generated: everything written
    get_state_s: float = 0.0
    history_s: float = 0.0
    checkpoints: int = 0

    def tenth(self, last: bool) -> float:
        """Median turn time of the first (or last) 10% of turns, over every repeat."""
        n = max(1, len(self.turn_s) // 10)
        runs = [self.turn_s, *self.other_runs]
        return statistics.median(t for run in runs for t in (run[-n:] if last else run[:n]))


async def warm_up(graph: Any, saver: Any, threads: int, turns: int) -> None:
    """Open the pool's connections and prepare every statement on them, as a running
    service has, then delete the warm-up threads: measurements start in steady state."""
    ids = [str(uuid.uuid4()) for _ in range(threads)]

    async def one(thread: str, seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(turns):
            await ask(graph, thread, rng)

    await asyncio.gather(*(one(thread, i) for i, thread in enumerate(ids)))
    for thread in ids:
        await saver.adelete_thread(thread)


async def _timed(call: Any, repeats: int = 3) -> tuple[float, Any]:
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = await call()
        best = min(best, time.perf_counter() - start)
    return best, result


async def conversation(kind: str, turns: int, vacuum_every: int | None = None) -> Conversation:
    """Run one conversation and measure it; `vacuum_every` runs VACUUM every so many turns,
    as autovacuum does in a live database, so that dead row versions get reused."""
    out = Conversation()
    rng = random.Random(1)
    async with fresh_database() as dsn, saver_for(kind, dsn) as saver:
        graph = chat_graph(saver)
        await warm_up(graph, saver, threads=20, turns=2)  # every pooled connection
        conn = await asyncpg.connect(dsn)
        try:
            thread = str(uuid.uuid4())
            start_lsn = await conn.fetchval("SELECT pg_current_wal_insert_lsn()")
            for turn in range(turns):
                start = time.perf_counter()
                await ask(graph, thread, rng)
                out.turn_s.append(time.perf_counter() - start)
                if vacuum_every and (turn + 1) % vacuum_every == 0:
                    await conn.execute("VACUUM")
            out.wal = int(
                await conn.fetchval("SELECT pg_current_wal_insert_lsn() - $1::pg_lsn", start_lsn)
            )
            await conn.execute("VACUUM")
            out.bytes_vacuumed = await stored_bytes(conn, kind)
            out.payload = int(await conn.fetchval(PAYLOAD_SQL[kind]))
            config = {"configurable": {"thread_id": thread}}
            out.get_state_s, _ = await _timed(lambda: graph.aget_state(config))
            out.history_s, history = await _timed(
                lambda: _collect(graph.aget_state_history(config))
            )
            out.checkpoints = len(history)
            await conn.execute("VACUUM FULL")
            out.bytes_live = await stored_bytes(conn, kind)
        finally:
            await conn.close()
    return out


async def _collect(items: AsyncIterator[Any]) -> list[Any]:
    return [item async for item in items]


async def concurrent_turns_per_second(kind: str, conversations: int, turns: int) -> float:
    """`conversations` conversations of `turns` turns at once, on one pool of 20."""
    async with fresh_database() as dsn, saver_for(kind, dsn) as saver:
        graph = chat_graph(saver)
        await warm_up(graph, saver, threads=conversations, turns=1)

        async def one(seed: int) -> None:
            rng, thread = random.Random(seed), str(uuid.uuid4())
            for _ in range(turns):
                await ask(graph, thread, rng)

        start = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(conversations)))
        return conversations * turns / (time.perf_counter() - start)


async def conformance(kind: str) -> tuple[int, int, list[str]]:
    """(capabilities passed, capabilities tested, names of the failed ones)."""
    from langgraph.checkpoint.conformance import checkpointer_test, validate
    from langgraph.checkpoint.conformance.report import ProgressCallbacks

    async with fresh_database() as dsn:
        held: dict[str, Any] = {}

        async def lifespan() -> AsyncIterator[None]:
            async with saver_for(kind, dsn, pool_max=5) as saver:
                held["saver"] = saver
                yield

        @checkpointer_test(name=kind, lifespan=lifespan)
        async def factory() -> AsyncIterator[Any]:
            yield held["saver"]

        report = await validate(factory, progress=ProgressCallbacks.quiet())
    failed = sorted(name for name, result in report.results.items() if not result.passed)
    return len(report.results) - len(failed), len(report.results), failed
