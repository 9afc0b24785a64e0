"""`langgraph dev` runs our graph with our checkpointer; threads land in `conversations`."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import asyncpg
import pytest

ROOT = Path(__file__).resolve().parents[1]
LANGGRAPH = Path(sys.executable).parent / "langgraph"

pytestmark = [
    pytest.mark.langgraph_dev,
    pytest.mark.skipif(
        not LANGGRAPH.exists() and shutil.which("langgraph") is None,
        reason="langgraph-cli is not installed",
    ),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def memory_env(dsn: str) -> dict[str, str]:
    """POSTGRES_MEMORY_* variables for a DSN (TCP or Unix socket)."""
    parts = urlsplit(dsn)
    query = parse_qs(parts.query)
    return {
        "POSTGRES_MEMORY_HOST": query.get("host", [parts.hostname or "127.0.0.1"])[0],
        "POSTGRES_MEMORY_PORT": str(query.get("port", [parts.port or 5432])[0]),
        "POSTGRES_MEMORY_USER": parts.username or "postgres",
        "POSTGRES_MEMORY_PASSWORD": parts.password or "",
        "POSTGRES_MEMORY_DB": parts.path.lstrip("/"),
        "POSTGRES_MEMORY_EMBEDDED": "false",
    }


@pytest.fixture
def langgraph_dev(database_dsn: str, tmp_path: Path):
    port = free_port()
    env = {**os.environ, **memory_env(database_dsn)}
    env |= {"WEATHER_PROVIDER": "offline", "STOCK_PROVIDER": "offline", "OPENAI_API_KEY": ""}
    env |= {"LANGGRAPH_NO_VERSION_CHECK": "true", "NO_COLOR": "1"}
    env.pop("OPENAI_API_KEY")
    log_path = tmp_path / "langgraph-dev.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [str(LANGGRAPH) if LANGGRAPH.exists() else "langgraph", "dev", "--no-browser",
             "--no-reload", "--host", "127.0.0.1", "--port", str(port)],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 90
        url = None
        while time.monotonic() < deadline and proc.poll() is None:
            text = re.sub(r"\x1b\[[0-9;]*m", "", log_path.read_text())
            found = re.search(r"API: (http://127\.0\.0\.1:\d+)", text)
            if found and "Application started up" in text:
                url = found[1]
                break
            time.sleep(0.3)  # polling the log for readiness, not a fixed wait
        assert url, f"langgraph dev did not start:\n{log_path.read_text()[-3000:]}"
        yield url, log_path
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


async def test_langgraph_dev_thread_lands_in_conversations(langgraph_dev, database_dsn) -> None:
    from langgraph_sdk import get_client

    url, log_path = langgraph_dev
    client = get_client(url=url)
    thread = await client.threads.create()
    result = await client.runs.wait(
        thread["thread_id"],
        "vera",
        input={"messages": [{"role": "user", "content":
               "What's the weather in Montevideo and the price of AAPL?"}]},
    )  # fmt: skip
    answer = result["messages"][-1]["content"]
    assert "Montevideo" in answer and "AAPL" in answer

    conn = await asyncpg.connect(database_dsn)
    try:
        roles = await conn.fetchval(
            "SELECT jsonb_path_query_array(messages, '$[*].role')::text FROM conversations "
            "WHERE session_id = $1",
            uuid.UUID(thread["thread_id"]),
        )
    finally:
        await conn.close()
    assert roles == '["user", "assistant", "tool", "tool", "assistant"]'
    log = log_path.read_text()
    assert "Custom checkpointer missing" not in log
