"""The API under load as deployed: `python -m src.api` with `API_WORKERS` worker processes
on a fresh database, the real `ChatOpenAI` talking to the suite's fake OpenAI server
(`bench.fake_model`, another process), and many sessions sending turns one after another
through `POST /chat` for a fixed time.

A turn answered 503 `overloaded` is sent again with the same `turn_id` after its
`Retry-After`, as the API documents (counted, not an error); any other failure is an error,
by code. Afterwards the database is checked: every acknowledged user message (its stream
began) is stored exactly once, nothing refused is stored, each finished turn has its
answer, and no checkpoint chain forked (`tests.support.stored_record`)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx
from prometheus_client.parser import text_string_to_metric_families

from bench.api_load import wait_healthy
from bench.savers import fresh_database
from tests.fake_openai import KEY, MODEL
from tests.support import free_port, memory_env, stored_record

ROOT = Path(__file__).resolve().parents[1]
RETRIES = 20  # sends of one turn answered `overloaded` before it counts as an error


@dataclass
class WorkersLoad:
    """One run's figures."""

    workers: int
    sessions: int
    seconds: float
    pool_max: int
    max_turns: int  # MAX_CONCURRENT_TURNS (0: the default)
    turns: int = 0
    overloaded: int = 0  # 503 `overloaded` answers (each sent again)
    errors: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)  # first send to `done`
    acknowledged: dict[str, list[str]] = field(default_factory=dict)
    refused: dict[str, list[str]] = field(default_factory=dict)
    done: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)  # of the consistency check
    elapsed_s: float = 0.0
    server_cpu_s: float = 0.0  # of the workers (and their supervisor) during the load
    pool_in_use: float = 0.0  # the most pooled connections lent out at once (all workers)
    pool_waiting: float = 0.0  # the most callers waiting for one at once
    model_cpu_s: float = 0.0  # of the fake model's process

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def _env(dsn: str, port: int, model_url: str, run: WorkersLoad) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"API_KEY", "OPENAI_API_KEY"}}
    env.update(memory_env(dsn))
    env.update(
        PYTHONPATH=str(ROOT),
        API_HOST="127.0.0.1",
        API_PORT=str(port),
        API_WORKERS=str(run.workers),
        ENVIRONMENT="development",
        POSTGRES_MEMORY_POOL_MAX=str(run.pool_max),
        POSTGRES_MEMORY_POOL_MIN=str(min(5, run.pool_max)),
        MAX_CONCURRENT_TURNS=str(run.max_turns),
        RATE_LIMIT_PER_MINUTE="100000000",
        WEATHER_PROVIDER="offline",
        STOCK_PROVIDER="offline",
        OPENAI_API_KEY=KEY,
        OPENAI_BASE_URL=model_url,
        AGENT_MODEL=MODEL,
        LOG_LEVEL="WARNING",
    )
    return env


async def _turn(client: httpx.AsyncClient, sid: str, text: str, run: WorkersLoad) -> None:
    """One turn, sent again while it is answered `overloaded`."""
    turn_id, started = uuid.uuid4().hex, time.perf_counter()
    body = {"session_id": sid, "message": text, "turn_id": turn_id}
    for _ in range(RETRIES):
        try:
            async with client.stream("POST", "/chat", json=body) as response:
                if response.status_code != 200:
                    answer = json.loads(await response.aread())
                    if answer.get("code") == "overloaded":
                        run.overloaded += 1
                        await asyncio.sleep(float(response.headers.get("retry-after", "1")))
                        continue
                    run.errors[f"HTTP {response.status_code} {answer.get('code')}"] += 1
                    break
                run.acknowledged[sid].append(text)
                last, code = await _read(response)
        except httpx.HTTPError as exc:
            run.errors[type(exc).__name__] += 1
            return
        if last == "done":
            run.turns += 1
            run.done[sid] += 1
            run.latencies.append(time.perf_counter() - started)
            return
        if code == "overloaded":  # stopped mid-way: the same turn_id resumes it
            run.overloaded += 1
            await asyncio.sleep(2)
            continue
        run.errors[code or f"stream ended on {last}"] += 1
        return
    else:
        run.errors["overloaded (every retry)"] += 1
    if text not in run.acknowledged[sid]:
        run.refused[sid].append(text)


async def _read(response: httpx.Response) -> tuple[str | None, str | None]:
    """The stream's last event, and the code of an `error` event."""
    last, code = None, None
    async for line in response.aiter_lines():
        if line.startswith("event: "):
            last = line[7:]
        elif line.startswith("data: ") and last == "error":
            code = json.loads(line[6:])["code"]
    return last, code


async def workers_load(
    workers: int = 2,
    sessions: int = 200,
    seconds: float = 60.0,
    pool_max: int = 20,
    max_turns: int = 0,
) -> WorkersLoad:
    """Run the load, then check the database."""
    run = WorkersLoad(workers, sessions, seconds, pool_max, max_turns)
    sids = [str(uuid.uuid4()) for _ in range(sessions)]
    for sid in sids:
        run.acknowledged[sid], run.refused[sid], run.done[sid] = [], [], 0
    async with fresh_database() as dsn:
        model = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.fake_model", cwd=ROOT, stdout=asyncio.subprocess.PIPE
        )
        assert model.stdout is not None
        model_url = (await asyncio.wait_for(model.stdout.readline(), 60)).decode().strip()
        port = free_port()
        with tempfile.TemporaryDirectory() as cwd:  # no developer .env in the way
            server = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "src.api", cwd=cwd, env=_env(dsn, port, model_url, run)
            )
            try:
                limits = httpx.Limits(max_connections=sessions + 10, keepalive_expiry=2.0)
                base = f"http://127.0.0.1:{port}"
                async with httpx.AsyncClient(base_url=base, timeout=120, limits=limits) as client:
                    await wait_healthy(client, server, seconds=120)
                    cpu = cpu_seconds(server.pid), cpu_seconds(model.pid)
                    start = time.perf_counter()
                    deadline = start + seconds

                    async def session(n: int, sid: str) -> None:
                        t = 0
                        while time.perf_counter() < deadline:
                            await _turn(client, sid, f"user {n}, turn {t}: hello", run)
                            t += 1

                    watcher = asyncio.create_task(_watch_pool(client, run))
                    await asyncio.gather(*(session(n, sid) for n, sid in enumerate(sids)))
                    watcher.cancel()
                    run.elapsed_s = time.perf_counter() - start
                    run.server_cpu_s = cpu_seconds(server.pid) - cpu[0]
                    run.model_cpu_s = cpu_seconds(model.pid) - cpu[1]
            finally:
                server.terminate()
                model.terminate()
                await asyncio.wait_for(server.wait(), 60)
                await model.wait()
        conn = await asyncpg.connect(dsn)
        try:
            record = await stored_record(conn, sids)
        finally:
            await conn.close()
    run.problems = _check(run, record)
    return run


def _check(run: WorkersLoad, record: dict) -> list[str]:
    """What the database holds that it should not, or lacks."""
    problems = []
    for sid, sent in run.acknowledged.items():
        stored = Counter(record["users"][sid])
        lost = [m for m in sent if stored[m] == 0]
        doubled = [m for m, n in stored.items() if n > 1]
        extra = [m for m in stored if m not in sent]  # refused, yet stored
        if lost or doubled or extra:
            problems.append(f"{sid}: lost {lost}, doubled {doubled}, refused but stored {extra}")
        if record["answers"][sid] < run.done[sid]:
            problems.append(f"{sid}: {run.done[sid]} turns done, {record['answers'][sid]} stored")
    if record["forks"]:
        problems.append(f"{record['forks']} checkpoints with two children (forks)")
    return problems


async def _watch_pool(client: httpx.AsyncClient, run: WorkersLoad) -> None:
    """Keep the highest pool gauges of the workers' scrapes (each refreshes every 2 s)."""
    while True:
        await asyncio.sleep(1.0)
        with contextlib.suppress(httpx.HTTPError):
            scrape = (await client.get("/metrics")).text
            for family in text_string_to_metric_families(scrape):
                for sample in family.samples:
                    if sample.name == "vera_db_pool_in_use":
                        run.pool_in_use = max(run.pool_in_use, sample.value)
                    elif sample.name == "vera_db_pool_waiting":
                        run.pool_waiting = max(run.pool_waiting, sample.value)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its live descendants (Linux /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return 0.0
    own = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return own + sum(cpu_seconds(int(child)) for child in children)


def workers_table(runs: list[WorkersLoad]) -> tuple[tuple[str, ...], list[tuple[str, ...]]]:
    """(header, rows) of a table with one column per run."""

    def seconds(value: float) -> str:
        return f"{value:.2f} s"

    figures = [
        ("workers x pool max (MAX_CONCURRENT_TURNS)", lambda r: _shape(r)),
        ("concurrent sessions, seconds", lambda r: f"{r.sessions}, {r.seconds:.0f} s"),
        ("turns done", lambda r: f"{r.turns}"),
        ("turns/s", lambda r: f"{r.turns / r.elapsed_s:.1f}" if r.elapsed_s else "n/a"),
        ("server CPU per turn (all workers)", lambda r: _per_turn(r.server_cpu_s, r)),
        ("fake model CPU per turn", lambda r: _per_turn(r.model_cpu_s, r)),
        (
            "pooled connections lent out / callers waiting, most at once",
            lambda r: f"{r.pool_in_use:.0f} / {r.pool_waiting:.0f}",
        ),
        ("errors, by code", lambda r: _errors(r)),
        ("503 overloaded, sent again", lambda r: f"{r.overloaded}"),
        ("turn latency p50 (first send to done)", lambda r: seconds(r.percentile(0.5))),
        ("turn latency p99", lambda r: seconds(r.percentile(0.99))),
        (
            "consistency: acknowledged messages stored once, refused ones not, no fork",
            lambda r: "ok" if not r.problems else f"**{len(r.problems)} problems**",
        ),
    ]
    header = ("figure", *(f"run {i + 1}" for i in range(len(runs))))
    return header, [(name, *(cell(r) for r in runs)) for name, cell in figures]


def _shape(run: WorkersLoad) -> str:
    limit = run.max_turns or f"default {5 * run.pool_max}"
    return f"{run.workers} x {run.pool_max} ({limit})"


def _per_turn(cpu_s: float, run: WorkersLoad) -> str:
    return f"{cpu_s / run.turns * 1000:.0f} ms" if run.turns else "n/a"


def _errors(run: WorkersLoad) -> str:
    total = sum(run.errors.values())
    return f"{total}" + (f" ({dict(run.errors.most_common(4))})" if total else "")


async def _main() -> None:
    from bench.report import simple_table

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--sessions", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--pool-max", type=int, default=20)
    parser.add_argument("--max-turns", type=int, default=0, help="MAX_CONCURRENT_TURNS")
    args = parser.parse_args()
    run = await workers_load(
        args.workers, args.sessions, args.seconds, args.pool_max, args.max_turns
    )
    print(simple_table(*workers_table([run])))
    for problem in run.problems[:10]:
        print(problem)


if __name__ == "__main__":
    asyncio.run(_main())
