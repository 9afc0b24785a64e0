"""Resident memory of a process taking turns on many sessions (issue 28), ours against the
official saver, interleaved: each sample is a new Python process.

Each saver's fresh database first holds `sessions` conversations of `turns` turns, seeded
once: `DISTINCT` of them by graph turns, in `SEED_PROCESSES` processes per saver, both
savers' at once (`python -m bench.session_memory seed KIND DSN SESSIONS TURNS PART PARTS`:
every PARTS-th session from PART, 10 at a time, with text of its own), then session `i` a
copy of session `i % DISTINCT` (`bench.session_copies`: the rows its turns stored, under
another thread id; each session is read into memory on its own all the same, and a graph
turn costs more than the copy: 20,000 graph turns per saver took the official 8-30 min).
Each sample runs on a copy of that database (`CREATE DATABASE ... TEMPLATE`), so every
sample finds sessions of exactly `turns` turns.
In the sample's child (`python -m bench.session_memory KIND DSN SESSIONS ACTIVE`): the saver
opens its pool and takes one warm-up turn (every module loaded, every statement prepared),
then one turn on each of `ACTIVE` of the sessions; it reports its RSS before and after those
turns, and for ours the cache's accounted bytes.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import random
import statistics
import sys
import uuid
from dataclasses import dataclass, field
from typing import Any

from bench.savers import (
    SAVERS,
    ask,
    chat_graph,
    child_sample,
    copy_of,
    fresh_database,
    saver_for,
)
from bench.session_copies import copy_sessions

MIB = 2**20
GOAL = 1.2  # RSS growth / cache_max_bytes (issue 28)
# Seeding is not measured: two processes per saver keep both cores busy (one process
# waits on its event loop: 40 official turns/s alone, 75 in two).
SEED_PROCESSES = 2
SEED_CONCURRENCY = 10  # conversations at once in each seeding process (its pool's size)
DISTINCT = 100  # sessions seeded by graph turns; the others are copies of them


def thread_of(index: int) -> str:
    """The thread id of seeded session `index` (the same in the parent and the child)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"vera-bench-session-{index}"))


def rss() -> int:
    """This process's resident set size, in bytes."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


async def _child(kind: str, dsn: str, sessions: int, active: int) -> dict[str, Any]:
    rng = random.Random(11)
    async with saver_for(kind, dsn) as saver:
        graph = chat_graph(saver)
        await ask(graph, thread_of(sessions - 1), rng)  # outside the measured ones
        gc.collect()
        before = rss()
        for index in range(active):
            await ask(graph, thread_of(index), rng)
        gc.collect()
        after = rss()
        cache = getattr(saver, "message_logs", None)
        return {
            "before": before,
            "after": after,
            "accounted": cache.total_bytes if cache is not None else 0,
            "cached_sessions": len(cache) if cache is not None else 0,
            "bound": cache.max_bytes if cache is not None else 0,
        }


async def _sample(kind: str, dsn: str, sessions: int, active: int) -> dict[str, Any]:
    return await child_sample("bench.session_memory", kind, dsn, str(sessions), str(active))


async def _seed_part(
    kind: str, dsn: str, sessions: int, turns: int, part: int, parts: int
) -> dict[str, Any]:
    """Every `parts`-th of `sessions` conversations of `turns` turns from `part`,
    `SEED_CONCURRENCY` at a time; seeds of their own, so no two processes write the same
    text."""
    queue = list(range(part, sessions, parts))
    async with saver_for(kind, dsn, pool_max=SEED_CONCURRENCY) as saver:
        graph = chat_graph(saver, seed=7 + part)

        async def worker(seed: int) -> None:
            rng = random.Random(seed)
            while queue:
                thread = thread_of(queue.pop())
                for _ in range(turns):
                    await ask(graph, thread, rng)

        await asyncio.gather(*(worker(1000 * part + i) for i in range(SEED_CONCURRENCY)))
    return {"sessions": len(range(part, sessions, parts))}


async def _seed(dsns: dict[str, str], sessions: int, turns: int) -> None:
    """Each saver's database seeded: `DISTINCT` sessions by graph turns, both savers at once
    in `SEED_PROCESSES` processes each, then the others copied from them."""
    for kind in SAVERS:  # schema set-up once, before the processes race for it
        async with saver_for(kind, dsns[kind], pool_max=2):
            pass
    counts = (min(sessions, DISTINCT), turns)
    await asyncio.gather(
        *(
            child_sample("bench.session_memory", "seed", kind, dsns[kind], *map(str, part))
            for kind in SAVERS
            for part in ((*counts, p, SEED_PROCESSES) for p in range(SEED_PROCESSES))
        )
    )
    pairs = [(thread_of(i % DISTINCT), thread_of(i)) for i in range(DISTINCT, sessions)]
    for kind in SAVERS:
        async with saver_for(kind, dsns[kind]) as saver:
            held = await copy_sessions(kind, saver, dsns[kind], pairs)
        if held != sessions:
            raise RuntimeError(f"{kind}: {held} sessions seeded, not {sessions}")


@dataclass
class SessionMemory:
    """Every sample of each saver (`samples[kind]`: the children's reports)."""

    sessions: int
    active: int
    turns: int
    samples: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


async def session_memory(
    sessions: int, active: int, turns: int, repeats: int, server: str | None = None
) -> SessionMemory:
    """Both savers' databases seeded, then `repeats` child processes per saver, interleaved,
    each on a copy of its saver's seeded database."""
    out = SessionMemory(sessions, active, turns, {k: [] for k in SAVERS})
    args = () if server is None else (server,)
    async with fresh_database(*args) as dsn_a, fresh_database(*args) as dsn_b:
        dsns = dict(zip(SAVERS, (dsn_a, dsn_b), strict=True))
        await _seed(dsns, sessions, turns)
        for _ in range(repeats):
            for kind in SAVERS:
                async with copy_of(dsns[kind], *args) as copy:
                    out.samples[kind].append(await _sample(kind, copy, sessions, active))
    return out


def _spread(values: list[float]) -> str:
    ordered = sorted(values)
    return f"{ordered[0]:.1f} / **{statistics.median(ordered):.1f}** / {ordered[-1]:.1f}"


def session_memory_table(run: SessionMemory) -> str:
    """RSS after the turns and its growth during them, min / median / max over the
    children, for both savers; our cache's accounted bytes beside them."""
    ours, official = run.samples["ours"], run.samples["official"]
    label = f"on {run.active:,} of {run.sessions:,} sessions ({run.turns} turns each)"
    rows = [
        (f"RSS MiB after turns {label}", "after"),
        (f"RSS growth MiB during turns {label}", "growth"),
    ]

    def figure(sample: dict[str, Any], key: str) -> float:
        value = sample["after"] - sample["before"] if key == "growth" else sample[key]
        return float(value) / MIB

    lines = [
        "| figure | ours min / **median** / max | official min / **median** / max "
        "| ours/official (medians) |",
        "| --- | --- | --- | ---: |",
    ]
    for name, key in rows:
        a = [figure(s, key) for s in ours]
        b = [figure(s, key) for s in official]
        ratio = statistics.median(a) / statistics.median(b) if key == "after" else None
        lines.append(
            f"| {name} | {_spread(a)} | {_spread(b)} | {'-' if ratio is None else f'{ratio:.2f}'} |"
        )
    accounted = [s["accounted"] / MIB for s in ours]
    cached = statistics.median(s["cached_sessions"] for s in ours)
    lines.append(
        f"| our cache's accounted MiB ({cached:.0f} sessions cached) | {_spread(accounted)} "
        "| - | - |"
    )
    bound = ours[0]["bound"]
    worst = max(s["after"] - s["before"] for s in ours) / bound
    met = "yes" if worst <= GOAL else "**MISSED**"
    return "\n".join(lines) + (
        f"\n\nOur largest RSS growth is {worst:.2f}x the cache's bound "
        f"(`cache_max_bytes` = {bound / MIB:.0f} MiB; goal <= {GOAL}x: {met})."
    )


if __name__ == "__main__":
    if sys.argv[1] == "seed":
        kind, dsn, *counts = sys.argv[2:8]
        print(json.dumps(asyncio.run(_seed_part(kind, dsn, *map(int, counts)))))
    else:
        kind, dsn, sessions, active = sys.argv[1:5]
        print(json.dumps(asyncio.run(_child(kind, dsn, int(sessions), int(active)))))
