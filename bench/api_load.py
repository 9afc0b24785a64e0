"""The API under load: the real server (uvicorn, `bench.api_server`) on a fresh database,
many concurrent sessions sending turns through `POST /chat` with a streaming client."""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx

from bench.savers import fresh_database
from tests.support import free_port, memory_env

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class LoadResult:
    sessions: int
    turns: int
    model_delay_s: float
    elapsed_s: float = 0.0
    ttft_overhead_s: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    conversation_rows: int = 0
    stored_messages: int = 0

    @property
    def turns_per_s(self) -> float:
        return self.sessions * self.turns / self.elapsed_s

    def percentile(self, q: float) -> float:
        ordered = sorted(self.ttft_overhead_s)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def _server_env(dsn: str, port: int, delay: float) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"API_KEY", "OPENAI_API_KEY"}}
    env.update(memory_env(dsn))
    env.update(
        PYTHONPATH=str(ROOT),
        API_HOST="127.0.0.1",
        API_PORT=str(port),
        POSTGRES_MEMORY_POOL_MAX="20",
        RATE_LIMIT_PER_MINUTE="100000000",
        WEATHER_PROVIDER="offline",
        STOCK_PROVIDER="offline",
        LOG_LEVEL="WARNING",
        BENCH_MODEL_DELAY=str(delay),
    )
    return env


async def _turn(client: httpx.AsyncClient, sid: str, text: str, result: LoadResult) -> None:
    start = time.perf_counter()
    first_token: float | None = None
    last_event = None
    try:
        async with client.stream("POST", "/chat", json={"session_id": sid, "message": text}) as r:
            if r.status_code != 200:
                result.errors.append(f"HTTP {r.status_code}: {(await r.aread())[:200]!r}")
                return
            async for line in r.aiter_lines():
                if line.startswith("event: "):
                    last_event = line[7:]
                    if last_event == "token" and first_token is None:
                        first_token = time.perf_counter()
                elif line.startswith("data: ") and last_event == "error":
                    result.errors.append(json.loads(line[6:])["code"])
    except httpx.HTTPError as exc:
        result.errors.append(type(exc).__name__)
        return
    if last_event != "done":
        result.errors.append(f"stream ended on {last_event}")
    elif first_token is not None:
        result.ttft_overhead_s.append(first_token - start - result.model_delay_s)


async def api_load(sessions: int, turns: int, model_delay: float = 0.2) -> LoadResult:
    """Run the load and check the database afterwards."""
    result = LoadResult(sessions, turns, model_delay)
    async with fresh_database() as dsn:
        port = free_port()
        with tempfile.TemporaryDirectory() as cwd:  # no developer .env in the way
            server = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bench.api_server",
                cwd=cwd,
                env=_server_env(dsn, port, model_delay),
            )
            try:
                # Idle connections are dropped by the client before the server would.
                limits = httpx.Limits(max_connections=sessions + 10, keepalive_expiry=2.0)
                base = f"http://127.0.0.1:{port}"
                async with httpx.AsyncClient(base_url=base, timeout=120, limits=limits) as client:
                    await wait_healthy(client, server)

                    async def session(n: int) -> None:
                        sid = str(uuid.uuid4())
                        for t in range(turns):
                            await _turn(client, sid, f"Hello, I am user {n}, turn {t}.", result)

                    start = time.perf_counter()
                    await asyncio.gather(*(session(n) for n in range(sessions)))
                    result.elapsed_s = time.perf_counter() - start
            finally:
                server.terminate()
                await asyncio.wait_for(server.wait(), 60)
        conn = await asyncpg.connect(dsn)
        try:
            row = await conn.fetchrow(
                "SELECT count(*) AS n, COALESCE(SUM(jsonb_array_length(messages)), 0) AS m "
                "FROM conversations"
            )
        finally:
            await conn.close()
    result.conversation_rows, result.stored_messages = int(row["n"]), int(row["m"])
    return result


async def wait_healthy(
    client: httpx.AsyncClient, server: asyncio.subprocess.Process, seconds: float = 60
) -> None:
    """Wait until the server answers `/health` with 200 (RuntimeError if it exits first
    or `seconds` pass)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.returncode is not None:
            raise RuntimeError("the API server exited during start-up")
        try:
            if (await client.get("/health")).status_code == 200:
                return
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.1)
    raise RuntimeError("the API server did not become healthy")


def summary(results: list[LoadResult]) -> tuple[tuple[str, ...], list[tuple[str, ...]]]:
    """(header, rows) of a table with one column per load."""

    def ms(value: float) -> str:
        return f"{value * 1000:.1f} ms"

    figures = [
        ("sessions x turns each", lambda r: f"{r.sessions} x {r.turns}"),
        ("model delay per call", lambda r: ms(r.model_delay_s)),
        ("turns/s", lambda r: f"{r.turns_per_s:.1f}"),
        (
            "time to first token minus model delay, p50",
            lambda r: ms(statistics.median(r.ttft_overhead_s)) if r.ttft_overhead_s else "n/a",
        ),
        ("time to first token minus model delay, p99", lambda r: ms(r.percentile(0.99))),
        ("errors", lambda r: f"{len(r.errors)}" + (f" ({r.errors[:3]})" if r.errors else "")),
        ("rows in conversations", lambda r: f"{r.conversation_rows}"),
        (
            "messages in conversations (sent x 2)",
            lambda r: f"{r.stored_messages} ({r.sessions * r.turns * 2})",
        ),
    ]
    header = ("figure", *(f"{r.sessions} sessions" for r in results))
    return header, [(name, *(cell(r) for r in results)) for name, cell in figures]
