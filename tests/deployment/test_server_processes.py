"""`python -m src.api` as deployed, in processes of its own: production refuses to start
without a key, forwarded headers and the access log, one rate limit shared in Redis."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest

from src.api.app import create_app
from src.config.settings import SettingsError
from tests.api_harness import settings_for
from tests.processes import redis_url, server_processes

ROOT = Path(__file__).resolve().parents[2]


def test_production_refuses_to_start_without_a_key(tmp_path: Path, database_dsn: str) -> None:
    with pytest.raises(SettingsError, match="API_KEY"):
        create_app(settings_for(database_dsn, environment="production"))
    env = {k: v for k, v in os.environ.items() if k not in {"API_KEY", "OPENAI_API_KEY"}}
    env.update(ENVIRONMENT="production", PYTHONPATH=str(ROOT))
    done = subprocess.run(
        [sys.executable, "-m", "src.api"],
        cwd=tmp_path,  # no .env here
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "API_KEY must be set" in done.stderr


def _spoofed(client: httpx.Client, n: int) -> list[int]:
    return [
        client.get("/sessions", headers={"X-Forwarded-For": f"203.0.113.{i}"}).status_code
        for i in range(n)
    ]


def test_the_deployed_server_ignores_forwarded_for_and_logs_no_query_secret(
    database_dsn: str, tmp_path: Path
) -> None:
    secret = "query-secret-0123456789abcdefghijkl"
    log = tmp_path / "server.log"
    with (
        server_processes(database_dsn, [log], RATE_LIMIT_PER_MINUTE="4") as (url,),
        httpx.Client(base_url=url) as client,
    ):
        client.get("/health", params={"token": secret})
        assert client.get("/sessions", params={"api_key": secret, "limit": "5"}).status_code == 200
        # uvicorn trusts X-Forwarded-For from 127.0.0.1 unless told otherwise; spoofing it
        # must not buy a fresh per-address budget.
        assert _spoofed(client, 4) == [200, 200, 200, 429]
    text = log.read_text()
    assert "GET /sessions?api_key=***&limit=5" in text  # the request is logged...
    assert secret not in text  # ...without the key


def test_two_server_processes_share_one_budget_in_redis(database_dsn: str, tmp_path: Path) -> None:
    redis = redis_url()
    if redis is None:
        pytest.skip("no Redis server on 127.0.0.1:6379")
    name = "p" + uuid.uuid4().hex[:12]  # a principal of its own: no count from other runs
    key = "shared-budget-key-0123456789abcdefghij"
    env = {
        "RATE_LIMIT_STORAGE_URI": redis,
        "RATE_LIMIT_PER_MINUTE": "4",
        "API_KEYS": f"{name}:{key}",
    }
    logs = [tmp_path / "one.log", tmp_path / "two.log"]
    with server_processes(database_dsn, logs, **env) as (one, two):
        seen = [
            httpx.get(f"{url}/sessions", headers={"X-API-Key": key}).status_code
            for url in (one, two, one, two, one, two)
        ]
    assert seen == [200, 200, 200, 200, 429, 429]
