"""`python -m src.api` as deployed: server processes on free ports, and the Redis they may
share."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.api_harness import settings_values
from tests.support import as_environment, free_port

ROOT = Path(__file__).resolve().parents[1]


@contextmanager
def server_processes(dsn: str, logs: list[Path], **env: str) -> Iterator[list[str]]:
    """`python -m src.api` (as deployed), one per log file, started side by side on free
    ports; yields their base URLs."""
    environ = {k: v for k, v in os.environ.items() if k not in {"OPENAI_API_KEY", "API_KEY"}}
    environ.update(as_environment(settings_values(dsn)))
    environ.update(
        PYTHONPATH=str(ROOT),
        API_HOST="127.0.0.1",
        ENVIRONMENT="development",
        LOG_LEVEL="INFO",
        SHUTDOWN_GRACE_SECONDS="2",
        **env,
    )
    started: list[tuple[subprocess.Popen[bytes], str, Path]] = []
    try:
        for log_path in logs:
            port = free_port()
            with log_path.open("w") as log:
                process = subprocess.Popen(
                    [sys.executable, "-m", "src.api"],
                    cwd=log_path.parent,
                    env={**environ, "API_PORT": str(port)},
                    stdout=log,
                    stderr=log,
                )
            started.append((process, f"http://127.0.0.1:{port}", log_path))
        deadline = time.monotonic() + 120
        for process, url, log_path in started:
            while True:
                assert process.poll() is None, log_path.read_text()
                try:
                    httpx.head(f"{url}/health", timeout=2)
                    break
                except httpx.TransportError:
                    assert time.monotonic() < deadline, "server did not start"
                    time.sleep(0.1)
        yield [url for _, url, _ in started]
    finally:
        for process, _, _ in started:
            process.terminate()
        for process, _, _ in started:
            process.wait(timeout=30)


def redis_url() -> str | None:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            if sock.recv(16).startswith(b"+PONG"):
                return "redis://127.0.0.1:6379/0"
    except OSError:
        pass
    return None
