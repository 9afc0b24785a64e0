"""Graceful shutdown of a real `python -m src.api` process: on SIGTERM a streaming turn
still ends with its `done` within the grace, or with `shutting_down` when it cannot, and
the process exits by itself."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx

from tests.api_harness import parse_sse, settings_values
from tests.fake_openai import KEY, MODEL, FakeOpenAI, Reply
from tests.support import as_environment, free_port

ROOT = Path(__file__).resolve().parents[2]


@asynccontextmanager
async def api_process(
    dsn: str, openai_url: str, tmp_path: Path, **env: str
) -> AsyncIterator[tuple[subprocess.Popen, str]]:
    """The API as a process of its own, with the real ChatOpenAI talking to `openai_url`."""
    port = free_port()
    environ = {k: v for k, v in os.environ.items() if k not in {"OPENAI_API_KEY", "API_KEY"}}
    environ.update(as_environment(settings_values(dsn)))
    environ.update(
        PYTHONPATH=str(ROOT),
        API_HOST="127.0.0.1",
        API_PORT=str(port),
        OPENAI_API_KEY=KEY,
        OPENAI_BASE_URL=openai_url,
        AGENT_MODEL=MODEL,
        ENVIRONMENT="development",
        **env,
    )
    log_path = tmp_path / "server.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(  # noqa: ASYNC220 (started once; then polled)
            [sys.executable, "-m", "src.api"], cwd=tmp_path, env=environ, stdout=log, stderr=log
        )
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=url) as client:
            deadline = time.monotonic() + 60
            while True:
                assert process.poll() is None, log_path.read_text()
                try:
                    if (await client.get("/health")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, "server did not start"
                await asyncio.sleep(0.1)
        yield process, url
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)


async def stream_through_sigterm(process: subprocess.Popen, url: str) -> list[Any]:
    """Stream a turn; send SIGTERM once its first token arrived; read to the end."""
    body = {"session_id": str(uuid.uuid4()), "message": "Tell me a story", "turn_id": "story-1"}
    text, signalled = "", False
    async with (
        httpx.AsyncClient(base_url=url, timeout=60) as client,
        client.stream("POST", "/chat", json=body) as response,
    ):
        assert response.status_code == 200
        async for chunk in response.aiter_text():
            text += chunk
            if "event: token" in text and not signalled:
                process.send_signal(signal.SIGTERM)
                signalled = True
    return parse_sse(text)[0]


async def test_sigterm_lets_a_streaming_turn_finish_with_done(database_dsn, tmp_path) -> None:
    fake = FakeOpenAI(Reply(text="Once upon a time there was a market.", pieces=8, every=0.25))
    async with (
        fake.serve() as openai_url,
        api_process(database_dsn, openai_url, tmp_path, SHUTDOWN_GRACE_SECONDS="20") as (
            process,
            url,
        ),
    ):
        events = await stream_through_sigterm(process, url)
        assert [e.event for e in events][-1] == "done", events[-1]
        answer = "".join(e.data["content"] for e in events if e.event == "token")
        assert answer == "Once upon a time there was a market."
        # uvicorn exits by re-raising the SIGTERM it handled once done: a clean exit.
        assert await asyncio.to_thread(process.wait, 30) in (0, -signal.SIGTERM)


async def test_sigterm_past_the_grace_ends_the_stream_with_shutting_down(
    database_dsn, tmp_path
) -> None:
    fake = FakeOpenAI(Reply(text="A very long story " * 10, pieces=40, every=0.25))
    async with (
        fake.serve() as openai_url,
        api_process(database_dsn, openai_url, tmp_path, SHUTDOWN_GRACE_SECONDS="2") as (
            process,
            url,
        ),
    ):
        events = await stream_through_sigterm(process, url)
        assert events[-1].event == "error" and events[-1].data["code"] == "shutting_down"
        assert "turn_id" in events[-1].data["message"]
        await asyncio.to_thread(process.wait, 30)
