"""Two processes alternating turns on one thread against one process (issue 28), ours
against the official saver, interleaved turn by turn.

Each saver gets three worker processes (`python -m bench.two_processes KIND DSN`), each
with its own saver and pool: one takes every turn of a thread alone, two take turns on
another thread (a worker then always finds the other's last turn, which it did not
write). A worker reads `THREAD SEED` lines on stdin, runs one turn per line and answers
with the turn's time in seconds. A repeat is `turns` turns on new threads; its figure is
the median over its turns of the pair's turn time over the lone worker's turn run next to
it, for all its turns and for its first 10% (the second of them is the second worker's
first read of the thread).
"""

from __future__ import annotations

import asyncio
import random
import statistics
import sys
import time
import uuid
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.savers import SAVERS, ask, chat_graph, fresh_database, saver_for

ROOT = Path(__file__).resolve().parents[1]
LABEL = "two processes alternating turns on one thread vs one process"


@dataclass
class Alternating:
    """Per saver, one ratio per repeat: the median of two alternating workers' turn times
    over one worker's (turn by turn), for all turns and for the first 10%."""

    turns: int
    ratio: dict[str, list[float]] = field(default_factory=dict)
    first_ratio: dict[str, list[float]] = field(default_factory=dict)
    read_ratio: dict[str, list[float]] = field(default_factory=dict)  # the turns' reads
    one_ms: dict[str, list[float]] = field(default_factory=dict)  # median turn, one worker


async def _child(kind: str, dsn: str) -> None:
    async with saver_for(kind, dsn, pool_max=5) as saver:
        read = saver.aget_tuple
        read_s = [0.0]

        async def timed_read(config: Any) -> Any:
            start = time.perf_counter()
            try:
                return await read(config)
            finally:
                read_s[0] += time.perf_counter() - start

        saver.aget_tuple = timed_read  # the turn's checkpoint read, timed apart
        graph = chat_graph(saver)
        print("ready", flush=True)
        loop = asyncio.get_running_loop()
        while line := await loop.run_in_executor(None, sys.stdin.readline):
            thread, seed = line.split()
            read_s[0] = 0.0
            start = time.perf_counter()
            await ask(graph, thread, random.Random(int(seed)))
            print(f"{time.perf_counter() - start:.9f} {read_s[0]:.9f}", flush=True)


class _Worker:
    """One worker process: `turn` runs one turn on a thread and returns its seconds."""

    def __init__(self, child: asyncio.subprocess.Process) -> None:
        self.child = child

    @classmethod
    async def start(cls, kind: str, dsn: str) -> _Worker:
        child = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.two_processes",
            kind,
            dsn,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            cwd=ROOT,
        )
        assert child.stdout is not None
        if await child.stdout.readline() != b"ready\n":  # one at a time: schema setup races
            raise RuntimeError(f"worker process exited with {await child.wait()}")
        return cls(child)

    async def turn(self, thread: str, seed: int) -> tuple[float, float]:
        assert self.child.stdin is not None and self.child.stdout is not None
        self.child.stdin.write(f"{thread} {seed}\n".encode())
        await self.child.stdin.drain()
        line = await self.child.stdout.readline()
        if not line:
            raise RuntimeError(f"worker process exited with {await self.child.wait()}")
        turn, read = map(float, line.split())
        return turn, read

    async def stop(self) -> None:
        assert self.child.stdin is not None
        self.child.stdin.close()
        await self.child.wait()


async def alternating(turns: int, repeats: int, warm_turns: int = 10) -> Alternating:
    """Both savers on their own fresh databases; `repeats` repeats of `turns` turns."""
    out = Alternating(turns)
    for figure in (out.ratio, out.first_ratio, out.read_ratio, out.one_ms):
        figure.update({k: [] for k in SAVERS})
    first = max(2, turns // 10)
    async with fresh_database() as dsn_a, fresh_database() as dsn_b, AsyncExitStack() as stack:
        dsns = dict(zip(SAVERS, (dsn_a, dsn_b), strict=True))
        workers: dict[str, list[_Worker]] = {}
        for kind in SAVERS:
            workers[kind] = [await _Worker.start(kind, dsns[kind]) for _ in range(3)]
            for worker in workers[kind]:
                stack.push_async_callback(worker.stop)
        for kind in SAVERS:  # open the pools' connections, prepare what they prepare
            for worker in workers[kind]:
                for seed in range(warm_turns):
                    await worker.turn(str(uuid.uuid4()), seed)
        seeds = random.Random(28)
        for repeat in range(repeats):
            one: dict[str, list[tuple[float, float]]] = {k: [] for k in SAVERS}
            two: dict[str, list[tuple[float, float]]] = {k: [] for k in SAVERS}
            alone = {k: str(uuid.uuid4()) for k in SAVERS}
            shared = {k: str(uuid.uuid4()) for k in SAVERS}
            for turn in range(turns):
                # Which turn comes first changes every turn and repeat: none always follows
                # the same other workload.
                kinds = SAVERS if repeat % 2 == 0 else SAVERS[::-1]
                for kind in kinds:
                    solo, *pair = workers[kind]
                    runs = [
                        (one[kind], solo, alone[kind]),
                        (two[kind], pair[turn % 2], shared[kind]),
                    ]
                    for samples, worker, thread in runs if turn % 2 == 0 else runs[::-1]:
                        samples.append(await worker.turn(thread, seeds.randrange(10**6)))
            for kind in SAVERS:
                # Each pair's turn against the lone worker's next to it: the load of the
                # machine (shared, noisy) moves both alike.
                pairs = list(zip(two[kind], one[kind], strict=True))
                paired = [a[0] / b[0] for a, b in pairs]
                out.ratio[kind].append(statistics.median(paired))
                out.first_ratio[kind].append(statistics.median(paired[:first]))
                out.read_ratio[kind].append(statistics.median(a[1] / b[1] for a, b in pairs))
                out.one_ms[kind].append(statistics.median(t for t, _ in one[kind]) * 1e3)
    return out


def _spread(values: list[float]) -> str:
    ordered = sorted(values)
    return f"{ordered[0]:.2f} / **{statistics.median(ordered):.2f}** / {ordered[-1]:.2f}"


def alternating_table(run: Alternating, goal: float = 1.05) -> str:
    """The issue-28 row: each saver's ratio, min / median / max over the repeats."""
    met = statistics.median(run.ratio["ours"]) <= goal
    lines = [
        "| figure | ours min / **median** / max | official min / **median** / max | goal |",
        "| --- | --- | --- | --- |",
        f"| {LABEL}, {run.turns} turns | {_spread(run.ratio['ours'])} | "
        f"{_spread(run.ratio['official'])} | <= {goal}x: {'yes' if met else '**MISSED**'} |",
        f"| the same, first 10% of the turns | {_spread(run.first_ratio['ours'])} | "
        f"{_spread(run.first_ratio['official'])} | - |",
        f"| the same, the turns' checkpoint reads (`aget_tuple`) | "
        f"{_spread(run.read_ratio['ours'])} | {_spread(run.read_ratio['official'])} | - |",
        f"| one process's median turn ms | {_spread(run.one_ms['ours'])} | "
        f"{_spread(run.one_ms['official'])} | - |",
    ]
    repeats = len(run.ratio["ours"])
    return "\n".join(lines) + (
        f"\n\nMedian of each repeat's turn-by-turn ratios, {repeats} repeats; "
        "one process's median turn ms: min / median / max of the repeats."
    )


if __name__ == "__main__":
    asyncio.run(_child(sys.argv[1], sys.argv[2]))
