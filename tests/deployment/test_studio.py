"""`langgraph dev` runs our graph with our checkpointer; threads land in `conversations`."""

from __future__ import annotations

import uuid
from pathlib import Path

import asyncpg
import pytest

from tests.studio_harness import LANGGRAPH_DEV_MARKS, langgraph_dev_server

pytestmark = LANGGRAPH_DEV_MARKS


@pytest.fixture
def langgraph_dev(database_dsn: str, tmp_path: Path):
    with langgraph_dev_server(database_dsn, tmp_path / "langgraph-dev.log") as started:
        yield started


async def test_langgraph_dev_thread_lands_in_conversations(langgraph_dev, database_dsn) -> None:
    from langgraph_sdk import get_client

    url, log_path = langgraph_dev
    client = get_client(url=url)
    thread = await client.threads.create()
    result = await client.runs.wait(
        thread["thread_id"],
        "vera",
        input={
            "messages": [
                {
                    "role": "user",
                    "content": "What's the weather in Montevideo and the price of AAPL?",
                }
            ]
        },
    )
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
