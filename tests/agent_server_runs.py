"""What the Agent Server runs tests share: keys, requests, and reads of the database."""

from __future__ import annotations

import json
import uuid

import asyncpg

KEY = "runs-key-0123456789abcdefghijklmnopqr"
OTHER = "other-key-0123456789abcdefghijklmnopq"
QUESTION = "What's the weather in Montevideo and the price of AAPL?"


def user(text: str) -> dict:
    return {"messages": [{"role": "user", "content": text}]}


async def runs_of(db: asyncpg.Connection, tid: str) -> int:
    """How many runs of the thread are stored."""
    sql = "SELECT count(*) FROM thread_runs WHERE session_id = $1"
    return await db.fetchval(sql, uuid.UUID(tid))


async def transcript(db: asyncpg.Connection, tid: str) -> list[tuple[str, str]]:
    """The session's stored transcript: (type, content) of each message."""
    raw = await db.fetchval(
        "SELECT messages::text FROM conversations WHERE session_id = $1", uuid.UUID(tid)
    )
    return [(m["type"], m["content"]) for m in json.loads(raw or "[]")]
