"""Reads in a process that did not write the conversation (issue 28), ours against the
official saver, interleaved: each sample is a new Python process.

In the child (`python -m bench.first_read KIND DSN THREAD READS`): the saver opens its
pool (its connections just opened, nothing prepared, nothing cached), then times its
first `aget_state`, then `aget_state` through `READS` fresh saver instances on the same
pool (a worker that never saw the session; our in-process cache then holds nothing).
A size's children start while its conversation grows (`bench.savers.ReadyChild`: loading
Python's modules takes a new process seconds, all of it untimed) and wait, idle, to be told
to take their sample, one at a time.
Alone (`python -m bench.first_read --pairs 15`): the table on a private PostgreSQL.
"""

from __future__ import annotations

import asyncio
import json
import random
import statistics
import sys
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from bench.savers import (
    SAVERS,
    ReadyChild,
    ask,
    chat_graph,
    fresh_database,
    saver_for,
    wait_until_told,
)


@dataclass
class FirstReads:
    """Per saver and size: every sample of each figure, in seconds."""

    turns: list[int]
    first: dict[str, list[list[float]]] = field(default_factory=dict)  # first aget_state
    fresh: dict[str, list[list[float]]] = field(default_factory=dict)  # fresh instance
    opened: dict[str, list[list[float]]] = field(default_factory=dict)  # pool open + setup


async def _child(kind: str, dsn: str, thread: str, reads: int) -> dict[str, Any]:
    from src.agent.memory import ConversationCheckpointer

    config = {"configurable": {"thread_id": thread}}
    start = time.perf_counter()
    async with saver_for(kind, dsn, pool_max=5) as saver:
        opened = time.perf_counter() - start
        graph = chat_graph(saver)
        start = time.perf_counter()
        state = await graph.aget_state(config)
        first = time.perf_counter() - start
        fresh = []
        for _ in range(reads):
            reader = ConversationCheckpointer(saver.store) if kind == "ours" else saver
            graph = chat_graph(reader)
            start = time.perf_counter()
            await graph.aget_state(config)
            fresh.append(time.perf_counter() - start)
    return {
        "opened": opened,
        "first": first,
        "fresh": statistics.median(fresh),
        "messages": len(state.values["messages"]),
    }


async def first_reads(sizes: list[int], repeats: int, server: str, reads: int = 5) -> FirstReads:
    """One conversation per saver on its own fresh database of `server`, grown to each
    size; at each, `repeats` child processes per saver, interleaved."""
    out = FirstReads(sizes, *({k: [] for k in SAVERS} for _ in range(3)))
    async with fresh_database(server) as dsn_a, fresh_database(server) as dsn_b:
        dsns = dict(zip(SAVERS, (dsn_a, dsn_b), strict=True))
        threads = {k: str(uuid.uuid4()) for k in SAVERS}
        rngs = {k: random.Random(1) for k in SAVERS}
        async with saver_for("ours", dsn_a) as ours, saver_for("official", dsn_b) as official:
            graphs = {"ours": chat_graph(ours), "official": chat_graph(official)}
            done = 0
            for size in sizes:
                children = [
                    {
                        kind: await ReadyChild.spawn(
                            "bench.first_read", kind, dsns[kind], threads[kind], str(reads)
                        )
                        for kind in SAVERS
                    }
                    for _ in range(repeats)
                ]
                for _ in range(size - done):
                    for kind in SAVERS:
                        await ask(graphs[kind], threads[kind], rngs[kind])
                done = size
                await asyncio.gather(*(c.ready() for pair in children for c in pair.values()))
                samples: dict[str, list[dict[str, Any]]] = {k: [] for k in SAVERS}
                for pair in children:
                    for kind in SAVERS:
                        samples[kind].append(await pair[kind].sample())
                for kind in SAVERS:
                    assert {s["messages"] for s in samples[kind]} == {2 * size}
                    out.first[kind].append([s["first"] for s in samples[kind]])
                    out.fresh[kind].append([s["fresh"] for s in samples[kind]])
                    out.opened[kind].append([s["opened"] for s in samples[kind]])
    return out


def spread(ours: list[float], official: list[float]) -> str:
    """min / median / max of the paired ratios ours/official (sample i against sample i:
    they ran one after the other)."""
    ratios = sorted(a / b for a, b in zip(ours, official, strict=True))
    return f"{ratios[0]:.2f} / **{statistics.median(ratios):.2f}** / {ratios[-1]:.2f}"


async def _table(sizes: list[int], pairs: int) -> str:
    from bench.private_server import default_settings_server

    async with default_settings_server() as server:
        reads = await first_reads(sizes, repeats=pairs, server=server.dsn)
        return f"On {server.heading()}, {pairs} pairs:\n\n{first_read_table(reads)}"


def first_read_table(reads: FirstReads) -> str:
    """Issue 28's read rows: medians of each saver, and the paired ratios."""
    lines = [
        "| figure | ours ms | official ms | ours/official min / **median** / max | goal |",
        "| --- | ---: | ---: | --- | --- |",
    ]
    figures = [
        ("first `aget_state` of a new process (connection just opened)", reads.first, 0.7),
        ("`aget_state` from a fresh saver instance in another process", reads.fresh, 0.7),
        ("the new process's saver opening (pool, schema check)", reads.opened, None),
    ]
    for label, samples, goal in figures:
        for i, turns in enumerate(reads.turns):
            ours, official = samples["ours"][i], samples["official"][i]
            ratios = [a / b for a, b in zip(ours, official, strict=True)]
            met = "-"
            if goal is not None:
                met = f"<= {goal}x: " + (
                    "yes" if statistics.median(ratios) <= goal else "**MISSED**"
                )
            lines.append(
                f"| {label}, {turns} turns | {statistics.median(ours) * 1e3:.2f} | "
                f"{statistics.median(official) * 1e3:.2f} | {spread(ours, official)} | {met} |"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "--when-told":  # a sample's child process
        kind, dsn, thread, reads = sys.argv[2:6]
        wait_until_told()
        print(json.dumps(asyncio.run(_child(kind, dsn, thread, int(reads)))))
    else:  # issue 28's read rows alone: python -m bench.first_read [--pairs N] [--sizes ...]
        import argparse

        parser = argparse.ArgumentParser(description=__doc__)
        parser.add_argument("--pairs", type=int, default=15, help="samples per saver and size")
        parser.add_argument("--sizes", default="100,200", help="conversation lengths, in turns")
        args = parser.parse_args()
        sizes = [int(n) for n in args.sizes.split(",")]
        print(asyncio.run(_table(sizes, args.pairs)))
