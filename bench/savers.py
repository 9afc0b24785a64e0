"""What every benchmark shares: a fresh database per saver, the two savers, a chat graph
with varied message text, size queries, and a sample taken in a process of its own."""

from __future__ import annotations

import asyncio
import json
import os
import random
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
from langchain_core.messages import AIMessage, HumanMessage

from src.agent.memory import ConversationCheckpointer
from tests import support

ROOT = Path(__file__).resolve().parents[1]
SERVER = os.environ.get("BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
SAVERS = ("ours", "official")
TABLES = {
    "ours": [
        "conversations",
        "conversation_messages",
        "transcript_heads",
        "checkpoints",
        "checkpoint_blobs",
        "checkpoint_writes",
    ],
    "official": ["checkpoints", "checkpoint_blobs", "checkpoint_writes"],
}
# Uncompressed bytes of every stored value (bytea lengths, JSON text lengths).
PAYLOAD_SQL = {
    "ours": """SELECT
        (SELECT COALESCE(SUM(octet_length(messages::text)), 0) FROM conversations)
      + (SELECT COALESCE(SUM(octet_length(element::text)), 0) FROM conversation_messages)
      + (SELECT COALESCE(SUM(octet_length(seqs::text)), 0) FROM transcript_heads)
      + (SELECT COALESCE(SUM(octet_length(checkpoint::text) + octet_length(metadata::text)), 0)
         FROM checkpoints)
      + (SELECT COALESCE(SUM(octet_length(blob)), 0) FROM checkpoint_blobs)
      + (SELECT COALESCE(SUM(octet_length(blob)), 0) FROM checkpoint_writes)""",
    "official": """SELECT
        (SELECT COALESCE(SUM(octet_length(checkpoint::text) + octet_length(metadata::text)), 0)
         FROM checkpoints)
      + (SELECT COALESCE(SUM(octet_length(blob)), 0) FROM checkpoint_blobs)
      + (SELECT COALESCE(SUM(octet_length(blob)), 0) FROM checkpoint_writes)""",
}
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


def sentence(rng: random.Random, n: int) -> str:
    """Varied text (PostgreSQL would compress one repeated string to almost nothing)."""
    return " ".join(rng.choice(WORDS) for _ in range(n)) + f" {rng.randrange(10**6)}."


def chat_graph(checkpointer: Any, seed: int = 7) -> Any:
    """The tests' one-node chat graph, answering 20-60 words: only the checkpointer
    differs."""
    rng = random.Random(seed)
    return support.chat_graph(
        checkpointer, reply=lambda _: AIMessage(sentence(rng, rng.randint(20, 60)))
    )


async def ask(graph: Any, thread_id: str, rng: random.Random) -> None:
    config = {"configurable": {"thread_id": thread_id}}
    await graph.ainvoke({"messages": [HumanMessage(sentence(rng, 15))]}, config)


def fresh_database(server: str = SERVER) -> AbstractAsyncContextManager[str]:
    """A new database (its DSN) on `server`, an admin DSN (default: the benchmark server,
    BENCH_DATABASE_URL), dropped afterwards."""
    return support.fresh_database(server, "vera_bench")


@asynccontextmanager
async def copy_of(dsn: str, server: str = SERVER) -> AsyncIterator[str]:
    """A new database on `server` made from the database of `dsn` (`CREATE DATABASE ...
    TEMPLATE`: nothing may be connected to it), dropped afterwards."""
    name = f"vera_bench_{uuid.uuid4().hex[:10]}"
    template = urlsplit(dsn).path.lstrip("/")
    admin = await asyncpg.connect(server)
    try:
        await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    finally:
        await admin.close()
    copy = support.with_database(server, name)
    try:
        yield copy
    finally:
        await support.drop_database(server, copy)


@asynccontextmanager
async def saver_for(kind: str, dsn: str, pool_max: int = 20) -> AsyncIterator[Any]:
    """Our saver or the official `AsyncPostgresSaver`, each on a pool of `pool_max`."""
    if kind == "ours":
        async with ConversationCheckpointer.from_dsn(dsn, min_size=2, max_size=pool_max) as ours:
            yield ours
        return
    from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
    from psycopg.rows import dict_row
    from psycopg_pool import AsyncConnectionPool

    pool = AsyncConnectionPool(
        dsn,
        min_size=2,
        max_size=pool_max,
        open=False,
        kwargs={"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row},
    )
    await pool.open()
    try:
        saver = AsyncPostgresSaver(pool)
        await saver.setup()
        yield saver
    finally:
        await pool.close()


async def stored_bytes(conn: asyncpg.Connection, kind: str) -> int:
    """`pg_total_relation_size` of the saver's tables (heap, TOAST and indexes)."""
    return int(
        await conn.fetchval(
            "SELECT SUM(pg_total_relation_size(t)) FROM unnest($1::regclass[]) t", TABLES[kind]
        )
    )


async def child_sample(module: str, *args: str) -> dict[str, Any]:
    """The JSON a `python -m <module> <args>` prints: a sample taken in a new process."""
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        module,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=ROOT,
    )
    out, err = await child.communicate()
    if child.returncode:
        raise RuntimeError(f"{module} child failed: {err.decode()[-2000:]}")
    result: dict[str, Any] = json.loads(out)
    return result


class ReadyChild:
    """A sample's new process started ahead: it loads its modules, says `ready`, then waits
    (no CPU) for `go` before it takes its sample, so the loading of many (untimed) overlaps
    while each sample still runs alone in a process that did nothing else."""

    def __init__(self, child: asyncio.subprocess.Process, module: str) -> None:
        self.child, self.module = child, module

    @classmethod
    async def spawn(cls, module: str, *args: str) -> ReadyChild:
        child = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            module,
            "--when-told",
            *args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=ROOT,
        )
        return cls(child, module)

    async def ready(self) -> None:
        assert self.child.stdout is not None
        if await self.child.stdout.readline() != b"ready\n":
            await self._failed()

    async def sample(self) -> dict[str, Any]:
        """`go`, then the JSON the child prints (after `ready`)."""
        out, err = await self.child.communicate(b"go\n")
        if self.child.returncode:
            raise RuntimeError(f"{self.module} child failed: {err.decode()[-2000:]}")
        result: dict[str, Any] = json.loads(out)
        return result

    async def _failed(self) -> None:
        _, err = await self.child.communicate()
        raise RuntimeError(f"{self.module} child failed: {err.decode()[-2000:]}")


def wait_until_told() -> None:
    """In a `ReadyChild`: say `ready` (modules loaded), then block until `go`."""
    print("ready", flush=True)
    if sys.stdin.readline() != "go\n":
        raise SystemExit("not told to go")
