"""`python -m src.api` as a process of its own, configured through its environment only,
for tests that need the server as deployed (its HTTP protocol, its settings)."""

from __future__ import annotations

import os
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
def server_process(dsn: str, folder: Path, **env: str) -> Iterator[int]:
    """The server on a free port of 127.0.0.1 with the offline model and tools, the
    database at `dsn` and `env` (variable -> value); yields the port once `/health`
    answers. Its log is `folder / "server.log"`."""
    port = free_port()
    environment = {k: v for k, v in os.environ.items() if k not in {"OPENAI_API_KEY", "API_KEY"}}
    environment.update(as_environment(settings_values(dsn)))
    environment.update(PYTHONPATH=str(ROOT), API_HOST="127.0.0.1", API_PORT=str(port), **env)
    log_path = folder / "server.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "src.api"], cwd=folder, env=environment, stdout=log, stderr=log
        )
        try:
            deadline = time.monotonic() + 60
            while True:
                assert process.poll() is None, log_path.read_text()
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).is_success:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, "server did not start"
                time.sleep(0.1)
            yield port
        finally:
            process.terminate()
            process.wait(timeout=30)
