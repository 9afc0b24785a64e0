"""`python -m bench [--quick]`: our checkpointer against the official `AsyncPostgresSaver`
on one chat graph and one PostgreSQL (BENCH_DATABASE_URL, else 127.0.0.1:5432), then the
API under load. The write-cost workload alone runs on a private PostgreSQL started with
default settings (autovacuum on; `bench.private_server`). Prints tables; the full run also
writes docs/benchmarks.md, followed by the hand-written analysis in bench/analysis.md."""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path

import asyncpg

from bench.api_load import api_load, summary
from bench.api_workers import workers_load, workers_table
from bench.checkpointers import (
    cache_memory,
    cold_reads,
    concurrent_turns_per_second,
    conformance,
    conversation,
)
from bench.compare import HEADING, side_by_side
from bench.first_read import first_read_table, first_reads
from bench.private_server import default_settings_server
from bench.report import (
    SizeRun,
    cache_table,
    read_targets,
    simple_table,
    size_table,
    targets,
)
from bench.savers import SAVERS, SERVER
from bench.session_memory import session_memory, session_memory_table
from bench.statement_cost import statement_cost_section, system_server_sections
from bench.timing import Stopwatch
from bench.two_processes import LABEL, alternating, alternating_table
from bench.workload import write_cost

ROOT = Path(__file__).resolve().parents[1]
WATCH = Stopwatch("bench")


async def checkpointer_sizes(sizes: list[int], vacuum_every: int, repeats: int) -> list[SizeRun]:
    runs = []
    for turns in sizes:
        best = {}
        # Short runs have few turns in their first/last 10%: repeat them more.
        pooled = repeats * (3 if turns < 50 else 1)
        for _ in range(pooled):  # interleaved; medians pool all
            for kind in SAVERS:
                result = await conversation(kind, turns)
                if kind in best:
                    best[kind].other_runs.append(result.turn_s)
                else:
                    best[kind] = result
        often = {kind: await conversation(kind, turns, vacuum_every) for kind in SAVERS}
        run = SizeRun(
            turns,
            best["ours"],
            best["official"],
            often["ours"].bytes_vacuumed,
            often["official"].bytes_vacuumed,
            vacuum_every,
            pooled,
        )
        print(size_table(run) + "\n", flush=True)
        runs.append(run)
    return runs


async def main(quick: bool) -> str:
    sizes, (conversations, turns) = ([10, 20], (4, 5)) if quick else ([25, 100, 200], (20, 25))
    with WATCH.section("turn time and bytes by size"):
        runs = await checkpointer_sizes(
            sizes, vacuum_every=5 if quick else 10, repeats=1 if quick else 3
        )
    tries = 1 if quick else 2
    with WATCH.section("concurrency"):
        tps = {
            kind: max(
                [
                    await concurrent_turns_per_second(kind, conversations, turns)
                    for _ in range(tries)
                ]
            )
            for kind in SAVERS
        }
    best_of = f" (best of {tries})" if tries > 1 else ""
    concurrency = simple_table(
        ("figure", "ours", "official", "ours/official"),
        [
            (
                f"{conversations} concurrent conversations x {turns} turns: turns/s{best_of}",
                f"{tps['ours']:.1f}",
                f"{tps['official']:.1f}",
                f"{tps['ours'] / tps['official']:.2f}",
            )
        ],
    )
    print(concurrency + "\n", flush=True)
    sections = [
        *(size_table(r) for r in runs),
        "### Concurrency (pool of 20 for both)",
        concurrency,
    ]
    with WATCH.section("cold reads, first turn, two workers (issue 17)"):
        reads = await cold_reads(
            [100, 200] if quick else [100, 200, 1000],
            repeats=7 if quick else 15,
            first_turns=10 if quick else 30,
            worker_turns=20 if quick else 60,
        )
    cold = read_targets(reads)
    print(cold + "\n", flush=True)
    sections += ["### Targets of issue 17: cold reads, first turn, two workers", cold]
    with WATCH.section("message cache bounded by bytes"):
        caches = [
            await cache_memory(bound, 60 if quick else 100) for bound in (8 * 2**20, 64 * 2**20)
        ]
    memory = cache_table(caches)
    print(memory + "\n", flush=True)
    sections += ["### The in-process message cache, bounded by bytes (issue 17)", memory]
    with WATCH.section("RSS after turns on many sessions (issue 28)"):
        rss_run = await session_memory(*((200, 100, 5, 2) if quick else (1000, 500, 20, 3)))
    rss_heading = (
        f"### Targets of issue 28: RSS after turns on {rss_run.active:,} of "
        f"{rss_run.sessions:,} sessions ({rss_run.turns} turns each), each sample a new process"
    )
    print(rss_heading + "\n\n" + session_memory_table(rss_run) + "\n", flush=True)
    sections += [rss_heading, session_memory_table(rss_run)]
    many, tool_turns = (4, 10) if quick else (30, 150)
    async with default_settings_server() as server:  # both savers on it, one after the other
        with WATCH.section("first read of a new process (issue 28)"):
            fresh = await first_reads([100, 200], repeats=5 if quick else 15, server=server.dsn)
        with WATCH.section("write cost"):
            costs = {kind: await write_cost(kind, many, tool_turns, server.dsn) for kind in SAVERS}
    first = first_read_table(fresh)
    first_heading = (
        "### Targets of issue 28: reads in a process that did not write the conversation "
        f"(each sample a new process, ours and official interleaved), on {server.heading()}"
    )
    print(first_heading + "\n\n" + first + "\n", flush=True)
    sections += [first_heading, first]
    with WATCH.section("two processes alternating (issue 28)"):
        turns_each = alternating(20, 3) if quick else alternating(60, 7)
        alternate = alternating_table(await turns_each)
    alternate_heading = f"### Targets of issue 28: {LABEL} (each worker a process)"
    print(alternate_heading + "\n\n" + alternate + "\n", flush=True)
    sections += [alternate_heading, alternate]
    ours, official = costs["ours"], costs["official"]
    on_disk = (
        "bytes on disk, autovacuum only"
        if server.autovacuum_on
        else "bytes on disk, no VACUUM (autovacuum off)"
    )
    writes = simple_table(
        ("figure", "ours", "official", "ours/official", "target (issue 17)"),
        [
            (
                label,
                f"{a:,.1f}" if isinstance(a, float) else f"{a:,}",
                f"{b:,.1f}" if isinstance(b, float) else f"{b:,}",
                f"{a / b:.3f}",
                "-"
                if limit is None
                else f"<= {limit}x: " + ("yes" if a <= limit * b else "**MISSED**"),
            )
            for label, a, b, limit in [
                ("tool turns/s", ours.turns_per_s, official.turns_per_s, None),
                ("WAL bytes written", ours.wal, official.wal, 0.5),
                (on_disk, ours.bytes_autovacuum, official.bytes_autovacuum, 0.5),
                (
                    "bytes of live rows (after VACUUM FULL)",
                    ours.bytes_live,
                    official.bytes_live,
                    None,
                ),
            ]
        ],
    )
    writes += (
        "\n\nAutovacuum runs on each saver's tables and their TOAST during its workload: "
        f"ours {ours.autovacuums} in {ours.seconds:.0f} s, "
        f"official {official.autovacuums} in {official.seconds:.0f} s "
        "(autovacuum wakes every `autovacuum_naptime`, 1 min by default)."
    )
    heading = (
        f"### Write cost: {many} concurrent conversations x {tool_turns} tool turns, "
        f"no manual VACUUM, on {server.heading()}"
    )
    print(heading + "\n\n" + writes + "\n", flush=True)
    sections += [heading, writes]
    with WATCH.section("server time, chat turns (issue 28)"):
        sections += await statement_cost_section(
            [10] if quick else [25, 100, 200], 2 if quick else 5
        )
    if not quick:  # the write-cost table's tool turns too (issue 28's table names no graph)
        with WATCH.section("server time, tool turns (issue 28)"):
            sections += await statement_cost_section([25, 100], 5, workload="tool")
    with WATCH.section("server time on a build with LZ4, if installed (issue 28)"):
        sections += await system_server_sections(quick)
    if not quick:
        rows = []
        with WATCH.section("conformance"):
            for kind in SAVERS:
                passed, tested, failed = await conformance(kind)
                rows.append((kind, f"{passed}/{tested}", ", ".join(failed) or "-"))
        sections += [
            "### Conformance (langgraph-checkpoint-conformance `validate()`)",
            simple_table(("saver", "capabilities passed", "failed"), rows),
        ]
        print(sections[-1] + "\n", flush=True)
    with WATCH.section("API under load"):
        loads = [
            await api_load(sessions, 5 if not quick else 2)
            for sessions in ((20,) if quick else (20, 200))
        ]
    errors = sum(len(load.errors) for load in loads)
    lost = sum(max(0, 2 * load.sessions * load.turns - load.stored_messages) for load in loads)
    api = simple_table(*summary(loads))
    print(api + "\n", flush=True)
    if quick:  # the deployed shape takes more than the quick run's budget to start alone
        print("(the targets of issue 6 are checked on the full run: make bench)")
        return ""
    with WATCH.section("API as deployed"):
        deployed = await deployed_load()
    goals = targets(runs, (tps["ours"], tps["official"]), errors, lost)
    print(goals, flush=True)
    return "\n\n".join(
        [
            "## Checkpointer: ours vs official",
            "Figures are for one warm process (its cache holding the session) unless a table "
            "says cold or two workers.",
            *sections,
            "## API under load (uvicorn, `POST /chat`, streaming client)",
            api,
            DEPLOYED_HEADING,
            deployed,
            f"## Targets of issue 6 ({sizes[-1]} turns)",
            goals,
        ]
    )


DEPLOYED_HEADING = (
    "## API as deployed under load (issue 23): `python -m src.api`, 2 workers, the fake "
    "OpenAI server as model, 200 sessions for 60 s"
)


async def deployed_load() -> str:
    """200 sessions on 2 worker processes of the real server for 60 s (`bench.api_workers`)."""
    table = simple_table(*workers_table([await workers_load(2, 200, 60.0)]))
    print(DEPLOYED_HEADING + "\n\n" + table + "\n", flush=True)
    return table


def before_and_after(previous: str, current: str) -> str:
    """The previous docs/benchmarks.md's figures beside this run's (`bench.compare`)."""
    if not previous:
        return ""
    run = next((line for line in previous.splitlines() if line.startswith("Run: ")), "Run: ?")
    return (
        f"{HEADING}\n\nEvery row of the previous docs/benchmarks.md ({run[5:].split(';')[0]}; "
        "the sections it marks as run alone are from those runs) that this run measured "
        "again, beside this run's figures (rows are matched by "
        "section and figure; each side is one run on a shared, noisy machine: compare the "
        "ratios ours/official).\n\n" + side_by_side(previous, current) + "\n\n"
    )


async def server_version() -> str:
    conn = await asyncpg.connect(SERVER)
    try:
        return await conn.fetchval("SHOW server_version")
    finally:
        await conn.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes, for CI")
    args = parser.parse_args()
    body = asyncio.run(main(args.quick))
    if not args.quick:
        header = (
            f"# Benchmarks\n\nRun: `make bench` on {datetime.now(UTC):%Y-%m-%d}; "
            f"{platform.machine()}, {os.cpu_count()} cores; PostgreSQL "
            f"{asyncio.run(server_version())}; Python {platform.python_version()}; "
            f"langgraph {version('langgraph')}, langgraph-checkpoint-postgres "
            f"{version('langgraph-checkpoint-postgres')}, asyncpg {version('asyncpg')}, "
            f"psycopg {version('psycopg')}.\n\n"
            "Checkpointer runs: a one-node chat graph answering 20-60 varied words, each saver "
            "on its own fresh database of the same server, after a warm-up that opens the pool's "
            "connections (steady state, as in a running service); turn-time medians pool "
            "three interleaved runs per saver (nine for 25 turns). Bytes are "
            "`pg_total_relation_size` of each saver's tables (heap, TOAST, indexes). "
            "The write-cost table alone runs on a private server with default settings "
            "(its heading names it).\n\n"
        )
        analysis = (ROOT / "bench" / "analysis.md").read_text()
        (ROOT / "docs").mkdir(exist_ok=True)
        path = ROOT / "docs" / "benchmarks.md"
        previous = path.read_text() if path.exists() else ""
        comparison = before_and_after(previous, header + body)
        path.write_text(header + body + "\n\n" + comparison + analysis)
    WATCH.report()
