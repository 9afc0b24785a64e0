"""The write cost of a busy service: many concurrent conversations of tool turns, with
autovacuum on as in production (no manual VACUUM until the end), ours vs the official saver.
`python -m bench` runs it on a private server with default settings
(`bench.private_server`), not on the shared test server, which runs with autovacuum off.

A tool turn is what Vera does for "price of X?": the model asks for a tool, the tool
answers, the model answers (four messages, four checkpoints).
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langgraph.graph import MessagesState

from bench.savers import SERVER, TABLES, fresh_database, saver_for, sentence, stored_bytes
from tests.support import model_and_tools_graph


@dataclass
class WriteCost:
    """What one saver wrote for the whole workload."""

    turns_per_s: float
    wal: int  # WAL bytes generated during the workload
    bytes_autovacuum: int  # saver tables on disk at the end, autovacuum only
    bytes_live: int  # after VACUUM FULL
    seconds: float  # the workload's duration
    autovacuums: int  # autovacuum runs on the saver's tables (and TOAST) meanwhile


def tool_graph(checkpointer: Any, seed: int) -> Any:
    """model -> tools -> model: one tool call per question, then an answer."""
    rng = random.Random(seed)

    def model(state: MessagesState) -> dict:
        last = state["messages"][-1]
        if isinstance(last, HumanMessage):
            call = {
                "name": "get_stock_price",
                "args": {"symbol": rng.choice(["AAPL", "MSFT"])},
                "id": f"call_{uuid.uuid4().hex[:12]}",
            }
            return {"messages": [AIMessage("", tool_calls=[call])]}
        return {"messages": [AIMessage(sentence(rng, rng.randint(20, 60)))]}

    def tools(state: MessagesState) -> dict:
        call = state["messages"][-1].tool_calls[0]
        price = {"symbol": call["args"]["symbol"], "price": round(rng.uniform(100, 500), 2)}
        return {"messages": [ToolMessage(json.dumps(price), tool_call_id=call["id"])]}

    return model_and_tools_graph(checkpointer, model, tools)


# Autovacuum runs on the tables and their TOAST tables (the transcripts live in TOAST).
AUTOVACUUMS_SQL = """SELECT COALESCE(SUM(autovacuum_count), 0) FROM pg_stat_all_tables
    WHERE relid IN (SELECT unnest(ARRAY[oid, reltoastrelid]) FROM pg_class
                    WHERE oid = ANY($1::regclass[]))"""


async def write_cost(kind: str, conversations: int, turns: int, server: str = SERVER) -> WriteCost:
    """`conversations` concurrent conversations of `turns` tool turns on one saver, on a
    fresh database of `server` (an admin DSN)."""
    async with fresh_database(server) as dsn, saver_for(kind, dsn) as saver:
        graph = tool_graph(saver, seed=3)
        conn = await asyncpg.connect(dsn)
        try:
            start_lsn = await conn.fetchval("SELECT pg_current_wal_insert_lsn()")

            async def one(seed: int) -> None:
                rng, thread = random.Random(seed), str(uuid.uuid4())
                config = {"configurable": {"thread_id": thread}}
                for _ in range(turns):
                    question = HumanMessage(f"price of {sentence(rng, 8)}")
                    await graph.ainvoke({"messages": [question]}, config)

            started = time.perf_counter()
            await asyncio.gather(*(one(i) for i in range(conversations)))
            elapsed = time.perf_counter() - started
            wal = int(
                await conn.fetchval("SELECT pg_current_wal_insert_lsn() - $1::pg_lsn", start_lsn)
            )
            on_disk = await stored_bytes(conn, kind)
            autovacuums = int(await conn.fetchval(AUTOVACUUMS_SQL, TABLES[kind]))
            await conn.execute("VACUUM FULL")
            live = await stored_bytes(conn, kind)
        finally:
            await conn.close()
    return WriteCost(conversations * turns / elapsed, wal, on_disk, live, elapsed, autovacuums)
