"""`python -m src.api` where it cannot start: one line naming the address and the reason,
a non-zero exit, never a traceback (what `docker compose logs app` shows)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

from tests.support import free_port

ROOT = Path(__file__).resolve().parents[2]


def start(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """The server as deployed, in a folder with no `.env`, until it exits."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("POSTGRES_", "API_"))}
    environ.update(PYTHONPATH=str(ROOT), API_HOST="127.0.0.1", **env)
    return subprocess.run(
        [sys.executable, "-m", "src.api"],
        cwd=tmp_path,
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
    )


def assert_one_clear_line(done: subprocess.CompletedProcess[str], line: str) -> None:
    output = done.stdout + done.stderr
    assert done.returncode != 0, output
    assert "Traceback" not in output, output
    said = [text for text in output.splitlines() if "Vera cannot start" in text]
    assert len(said) == 1 and line in said[0], output


def test_an_unreachable_database_without_the_embedded_fallback(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    done = start(
        tmp_path,
        POSTGRES_MEMORY_HOST="127.0.0.1",
        POSTGRES_MEMORY_PORT=str(port),
        POSTGRES_MEMORY_EMBEDDED="false",
        API_PORT=str(free_port()),
    )
    assert_one_clear_line(
        done, f"memory database 127.0.0.1:{port} unreachable (ConnectionRefusedError"
    )


def test_a_database_that_refuses_us(tmp_path: Path, server_dsn: str) -> None:
    """A wrong password, role or database name: the server answers, and says no."""
    parts = urlsplit(server_dsn)
    host = parts.hostname or dict(p.split("=") for p in parts.query.split("&"))["host"]
    done = start(
        tmp_path,
        POSTGRES_MEMORY_HOST=host,
        POSTGRES_MEMORY_PORT=str(parts.port or 5432),
        POSTGRES_MEMORY_USER=parts.username or "postgres",
        POSTGRES_MEMORY_DB="no_such_db",
        POSTGRES_MEMORY_EMBEDDED="false",
        API_PORT=str(free_port()),
    )
    assert_one_clear_line(
        done,
        'refused the connection (InvalidCatalogNameError: database "no_such_db" does not exist)',
    )


def test_a_taken_port_is_said_before_anything_claims_to_listen(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        done = start(tmp_path, API_PORT=str(port), POSTGRES_MEMORY_EMBEDDED="false")
    assert_one_clear_line(done, f"127.0.0.1:{port} is not free (Address already in use)")
    assert "choose another port: API_PORT=8001 (make run PORT=8001)" in done.stderr
    assert "Vera API on" not in done.stderr + done.stdout
    assert "startup complete" not in done.stderr + done.stdout
