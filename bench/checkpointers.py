"""Our checkpointer against the official `AsyncPostgresSaver`: turn time, bytes, reads,
concurrency and the conformance capabilities, each saver on its own fresh database."""

from __future__ import annotations

import asyncio
import gc
import os
import random
import statistics
import time
import uuid
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from langchain_core.messages import HumanMessage

from bench.savers import (
    PAYLOAD_SQL,
    SAVERS,
    ask,
    chat_graph,
    fresh_database,
    saver_for,
    stored_bytes,
)
from src.agent.memory import ConversationCheckpointer


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


@dataclass
class ColdReads:
    """Issue 17's read figures, both savers measured in one run, interleaved."""

    turns: list[int]
    cold_s: dict[str, list[float]]  # per saver: median cold `aget_state` at each size
    warm_s: dict[str, list[float]]  # per saver: median `aget_state` through a warm saver
    first_turn_s: dict[str, float]  # per saver: median time of a new conversation's 1st turn
    one_worker_s: dict[str, float]  # median turn time, one saver instance (one worker)
    two_workers_s: dict[str, float]  # the same with two instances taking turns on a session


async def _sample(call: Awaitable[Any], samples: list[float]) -> None:
    """Await `call` (a coroutine not started yet) and add how long it took to `samples`."""
    start = time.perf_counter()
    await call
    samples.append(time.perf_counter() - start)


async def cold_reads(
    sizes: list[int], repeats: int, first_turns: int, worker_turns: int
) -> ColdReads:
    """Both savers on their own fresh databases at once, every measurement interleaved.

    Cold `aget_state`: through a new saver instance on the same pool (another worker or a
    restart; our in-process cache then holds nothing), of one conversation grown to each
    size. First turn: new conversations' first `ainvoke`. Two workers: two saver instances
    (each on its own pool) taking turns on one conversation, against one instance alone.
    """
    out = ColdReads(sizes, {k: [] for k in SAVERS}, {k: [] for k in SAVERS}, {}, {}, {})
    async with fresh_database() as dsn_a, fresh_database() as dsn_b:
        dsns = dict(zip(SAVERS, (dsn_a, dsn_b), strict=True))
        async with (
            saver_for("ours", dsns["ours"]) as ours,
            saver_for("official", dsns["official"]) as official,
        ):
            savers = {"ours": ours, "official": official}
            graphs = {k: chat_graph(s) for k, s in savers.items()}
            for kind in SAVERS:
                await warm_up(graphs[kind], savers[kind], threads=20, turns=2)

            def fresh_graph(kind: str) -> Any:
                if kind == "ours":
                    return chat_graph(ConversationCheckpointer(ours.store))
                return chat_graph(official)  # no in-process state to lose

            # First turns of new conversations.
            firsts: dict[str, list[float]] = {k: [] for k in SAVERS}
            rng = random.Random(5)
            for _ in range(first_turns):
                for kind in SAVERS:
                    thread = str(uuid.uuid4())
                    await _sample(ask(graphs[kind], thread, rng), firsts[kind])
            out.first_turn_s = {k: statistics.median(v) for k, v in firsts.items()}

            # One conversation per saver, grown to each size; cold and warm reads.
            threads = {k: str(uuid.uuid4()) for k in SAVERS}
            rngs = {k: random.Random(1) for k in SAVERS}
            done = 0
            for size in sizes:
                for _ in range(size - done):
                    for kind in SAVERS:
                        await ask(graphs[kind], threads[kind], rngs[kind])
                done = size
                cold: dict[str, list[float]] = {k: [] for k in SAVERS}
                warm: dict[str, list[float]] = {k: [] for k in SAVERS}
                for _ in range(repeats):
                    for kind in SAVERS:
                        config = {"configurable": {"thread_id": threads[kind]}}
                        graph = fresh_graph(kind)
                        await _sample(graph.aget_state(config), cold[kind])
                        await _sample(graphs[kind].aget_state(config), warm[kind])
                for kind in SAVERS:
                    out.cold_s[kind].append(statistics.median(cold[kind]))
                    out.warm_s[kind].append(statistics.median(warm[kind]))

            # Two workers: two instances, each on its own pool, alternating on one session.
            async with (
                saver_for("ours", dsns["ours"]) as ours_b,
                saver_for("official", dsns["official"]) as official_b,
            ):
                seconds = {"ours": ours_b, "official": official_b}
                one: dict[str, list[float]] = {k: [] for k in SAVERS}
                two: dict[str, list[float]] = {k: [] for k in SAVERS}
                alone = {k: str(uuid.uuid4()) for k in SAVERS}
                shared = {k: str(uuid.uuid4()) for k in SAVERS}
                pair = {k: (graphs[k], chat_graph(seconds[k])) for k in SAVERS}
                rng = random.Random(9)
                for turn in range(worker_turns):
                    for kind in SAVERS:
                        await _sample(ask(graphs[kind], alone[kind], rng), one[kind])
                        worker = pair[kind][turn % 2]
                        await _sample(ask(worker, shared[kind], rng), two[kind])
                out.one_worker_s = {k: statistics.median(v) for k, v in one.items()}
                out.two_workers_s = {k: statistics.median(v) for k, v in two.items()}
    return out


@dataclass
class CacheMemory:
    """Our in-process message cache under large messages, for one bound."""

    bound: int  # cache_max_bytes
    sessions: int
    cached_sessions: int
    estimated: int  # the cache's own estimate of its bytes
    rss_growth: int  # resident memory the process grew by meanwhile


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


async def cache_memory(bound: int, sessions: int, size: int = 100_000) -> CacheMemory:
    """`sessions` conversations of two turns whose questions are `size` characters, through
    one saver whose cache is bounded to `bound` bytes."""
    async with fresh_database() as dsn, saver_for("ours", dsn) as saver:
        checkpointer = ConversationCheckpointer(saver.store, cache_max_bytes=bound)
        graph = chat_graph(checkpointer)
        rng = random.Random(3)
        gc.collect()
        before = _rss()
        for _ in range(sessions):
            thread = str(uuid.uuid4())
            for _ in range(2):
                text = "".join(rng.choice("abcdefghij ") for _ in range(size))
                config = {"configurable": {"thread_id": thread}}
                await graph.ainvoke({"messages": [HumanMessage(text)]}, config)
        gc.collect()
        cache = checkpointer.message_logs
        return CacheMemory(bound, sessions, len(cache), cache.total_bytes, _rss() - before)
