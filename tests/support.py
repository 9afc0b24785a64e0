"""What tests and `bench/` share: a free port, a DSN as settings or environment (TCP or
Unix socket), fresh databases, the small chat graph and the model/tools graph shape."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit, urlunsplit

import asyncpg
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.types import interrupt

from src.config.settings import load_settings

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- a DSN as settings ---------------------------------------------------------------


def with_database(dsn: str, database: str) -> str:
    """`dsn` pointing at another database (works for host and Unix-socket DSNs)."""
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path="/" + database))


def memory_settings(dsn: str) -> dict[str, Any]:
    """`Settings` values pointing the memory store at `dsn` (TCP, or a Unix socket as in
    `postgresql://user@/db?host=/dir&port=5432`), with no embedded fallback."""
    parts = urlsplit(dsn)
    query = parse_qs(parts.query)
    return {
        "postgres_memory_host": query.get("host", [parts.hostname or "127.0.0.1"])[0],
        "postgres_memory_port": parts.port or int(query.get("port", ["5432"])[0]),
        "postgres_memory_user": parts.username or "postgres",
        "postgres_memory_password": parts.password or "",
        "postgres_memory_db": parts.path.lstrip("/"),
        "postgres_memory_embedded": False,
    }


def as_environment(values: dict[str, Any]) -> dict[str, str]:
    """Setting values as the environment variables a server process reads (None: unset)."""
    return {
        k.upper(): str(v).lower() if isinstance(v, bool) else str(v)
        for k, v in values.items()
        if v is not None
    }


def memory_env(dsn: str) -> dict[str, str]:
    """POSTGRES_MEMORY_* variables for a DSN (TCP or Unix socket)."""
    return as_environment(memory_settings(dsn))


# -- fresh databases -----------------------------------------------------------------


async def create_database(server_dsn: str, prefix: str = "vera_test") -> str:
    """Create a new empty database on the server of `server_dsn`; returns its DSN."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(server_dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return with_database(server_dsn, name)


async def drop_database(server_dsn: str, dsn: str) -> None:
    """Drop the database of `dsn`, even with connections still open on it."""
    name = urlsplit(dsn).path.lstrip("/")
    admin = await asyncpg.connect(server_dsn)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@asynccontextmanager
async def fresh_database(server_dsn: str, prefix: str = "vera_test") -> AsyncIterator[str]:
    """A new empty database for the block (its DSN), dropped afterwards."""
    dsn = await create_database(server_dsn, prefix)
    try:
        yield dsn
    finally:
        await drop_database(server_dsn, dsn)


# -- the small chat graph ------------------------------------------------------------

REPLIES = ["Sure, here it is.", "The market closed higher.", "Montevideo is mild today."]


def echo_text(n: int) -> str:
    """What `echo_reply` answers to a state holding `n` messages."""
    return f"{REPLIES[n % 3]} (#{n})"


def echo_reply(messages: list[BaseMessage]) -> AIMessage:
    """A rich AIMessage (usage, metadata) whose text depends on the message count."""
    n = len(messages)
    return AIMessage(
        content=echo_text(n),
        id=f"ai-{n}-{uuid.uuid4().hex[:6]}",
        usage_metadata={"input_tokens": n, "output_tokens": 3, "total_tokens": n + 3},
        response_metadata={"model_name": "fake", "finish_reason": "stop"},
        additional_kwargs={"refusal": None},
    )


def chat_graph(
    checkpointer: Any, reply: Callable[[list[BaseMessage]], AIMessage] = echo_reply
) -> Any:
    """A one-node chat graph (no model, no tools) compiled with `checkpointer`: each turn
    appends `reply(messages)`."""

    def answer(state: MessagesState) -> dict:
        return {"messages": [reply(state["messages"])]}

    builder = StateGraph(MessagesState)
    builder.add_node("reply", answer)
    builder.add_edge(START, "reply")
    builder.add_edge("reply", END)
    return builder.compile(checkpointer=checkpointer)


def model_and_tools_graph(
    checkpointer: Any,
    model: Callable[[MessagesState], dict],
    tools: Callable[[MessagesState], dict],
) -> Any:
    """Vera's graph shape with stand-in nodes: `model`, then `tools` and `model` again while
    the last message asks for tools, compiled with `checkpointer`."""

    def route(state: MessagesState) -> str:
        return "tools" if getattr(state["messages"][-1], "tool_calls", None) else END

    builder = StateGraph(MessagesState)
    builder.add_node("model", model)
    builder.add_node("tools", tools)
    builder.add_edge(START, "model")
    builder.add_conditional_edges("model", route, ["tools", END])
    builder.add_edge("tools", "model")
    return builder.compile(checkpointer=checkpointer)


def subgraph_calls_graph(checkpointer: Any, then: Callable[..., Any] | None = None) -> Any:
    """`plan` invokes a subgraph per call (namespace `plan:<task id>`) that interrupts when
    the turn says "ask"; `recall` invokes a `checkpointer=True` subgraph (`recall`); then
    the node `then` (as `model`), if given."""

    def inner(state: MessagesState) -> dict:
        return {"messages": [AIMessage(f"inner {len(state['messages'])}")]}

    def ask(state: MessagesState) -> dict:
        if "ask" in state["messages"][0].content:
            return {"messages": [AIMessage("ok " + interrupt("approve?"))]}
        return {}

    calls = StateGraph(MessagesState)
    calls.add_node("inner", inner)
    calls.add_node("ask", ask)
    calls.add_edge(START, "inner")
    calls.add_edge("inner", "ask")
    per_call = calls.compile()
    kept = StateGraph(MessagesState)
    kept.add_node("inner", inner)
    kept.add_edge(START, "inner")
    with_memory = kept.compile(checkpointer=True)

    async def plan(state: MessagesState) -> dict:
        out = await per_call.ainvoke({"messages": state["messages"][-1:]})
        return {"messages": [AIMessage("plan: " + out["messages"][-1].content)]}

    async def recall(state: MessagesState) -> dict:
        out = await with_memory.ainvoke({"messages": [HumanMessage("note")]})
        return {"messages": [AIMessage(f"recall {len(out['messages'])}")]}

    builder = StateGraph(MessagesState)
    builder.add_node("plan", plan)
    builder.add_node("recall", recall)
    builder.add_edge(START, "plan")
    builder.add_edge("plan", "recall")
    if then is None:
        builder.add_edge("recall", END)
    else:
        builder.add_node("model", then)
        builder.add_edge("recall", "model")
        builder.add_edge("model", END)
    return builder.compile(checkpointer=checkpointer)


async def transcript_lengths(conn: asyncpg.Connection, session_ids: list[str]) -> list[int]:
    """The number of messages in each session's transcript, sorted."""
    rows = await conn.fetch(
        "SELECT jsonb_array_length(messages) AS n FROM conversations "
        "WHERE session_id = ANY($1::uuid[])",
        [uuid.UUID(s) for s in session_ids],
    )
    return sorted(r["n"] for r in rows)


async def plant_expired_lease(conn: asyncpg.Connection, session_id: str) -> None:
    """The lease a worker that died mid-turn leaves: held by an unknown run, expired."""
    await conn.execute(
        "INSERT INTO turn_leases (session_id, run_id, expires_at) "
        "VALUES ($1, $2, now() - interval '1 second')",
        uuid.UUID(session_id),
        uuid.uuid4(),
    )


def cfg(thread_id: str) -> dict:
    return {"configurable": {"thread_id": thread_id}}


async def run_turns(graph, thread_id: str, n: int) -> None:
    for i in range(n):
        text = (
            f"question {i}: how is {['AAPL', 'MSFT', 'the weather'][i % 3]} doing? {uuid.uuid4()}"
        )
        await graph.ainvoke({"messages": [HumanMessage(text)]}, cfg(thread_id))


def readme_example() -> str:
    """The first python block of the README's "Use it in your own graph" section."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Use it in your own graph", 1)[1].split("\n## ", 1)[0]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match is not None, "no python block in the README's section"
    return match[1]


def run_example(python: str, dsn: str, cwd: Path, env: dict[str, str] | None = None) -> str:
    """Run the example with `python` on `dsn`; returns what it printed."""
    done = subprocess.run(
        [python, "-c", readme_example()],
        cwd=cwd,
        env={**(env or os.environ), "DATABASE_URL": dsn},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


async def schema_of(dsn: str) -> tuple[set[str], int]:
    """The public tables of `dsn`'s database and its number of conversations."""
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        return {r["tablename"] for r in rows}, await conn.fetchval(
            "SELECT count(*) FROM conversations"
        )
    finally:
        await conn.close()


OFFLINE = load_settings(weather_provider="offline", stock_provider="offline", openai_api_key=None)


async def ask(graph, thread: str, text: str) -> list:
    result = await graph.ainvoke({"messages": [HumanMessage(text)]}, cfg(thread))
    return result["messages"]


async def stored_record(conn: asyncpg.Connection, session_ids: list[str]) -> dict[str, Any]:
    """What a run left of these sessions, to check that nothing was lost or doubled: each
    session's user messages in its transcript (in order) and its assistant answers, and
    the checkpoints that have more than one child (a forked chain)."""
    ids = [uuid.UUID(s) for s in session_ids]
    rows = await conn.fetch(
        "SELECT c.session_id, e->>'role' AS role, e->>'content' AS content "
        "FROM conversations AS c, jsonb_array_elements(c.messages) WITH ORDINALITY AS m(e, n) "
        "WHERE c.session_id = ANY($1::uuid[]) ORDER BY c.session_id, m.n",
        ids,
    )
    forks = await conn.fetchval(
        "SELECT count(*) FROM (SELECT 1 FROM checkpoints WHERE session_id = ANY($1::uuid[]) "
        "AND checkpoint_ns = '' AND parent_checkpoint_id IS NOT NULL "
        "GROUP BY session_id, parent_checkpoint_id HAVING count(*) > 1) AS forked",
        ids,
    )
    users: dict[str, list[str]] = {s: [] for s in session_ids}
    answers: dict[str, int] = dict.fromkeys(session_ids, 0)
    for row in rows:
        sid = str(row["session_id"])
        if row["role"] == "user":
            users[sid].append(row["content"])
        elif row["role"] == "assistant" and row["content"]:
            answers[sid] += 1
    return {"users": users, "answers": answers, "forks": int(forks)}
