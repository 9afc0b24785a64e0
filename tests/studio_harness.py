"""Start `langgraph dev` (the LangGraph Studio backend) on a test database, as a subprocess.

Tests wrap `langgraph_dev_server` in a fixture of the scope they need:

    @pytest.fixture
    def langgraph_dev(database_dsn, tmp_path):
        with langgraph_dev_server(database_dsn, tmp_path / "langgraph-dev.log") as started:
            yield started
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.support import free_port, memory_env

ROOT = Path(__file__).resolve().parents[1]
LANGGRAPH = Path(sys.executable).parent / "langgraph"

# Marks for a module that starts `langgraph dev`: `pytestmark = LANGGRAPH_DEV_MARKS`.
LANGGRAPH_DEV_MARKS = [
    pytest.mark.langgraph_dev,
    pytest.mark.skipif(
        not LANGGRAPH.exists() and shutil.which("langgraph") is None,
        reason="langgraph-cli is not installed",
    ),
]


def needs_langgraph_dev(test: Callable[..., None]) -> Callable[..., None]:
    """LANGGRAPH_DEV_MARKS on one test, in a module whose other tests do not start it."""
    for mark in LANGGRAPH_DEV_MARKS:
        test = mark(test)
    return test


@contextmanager
def langgraph_dev_server(dsn: str, log_path: Path) -> Iterator[tuple[str, Path]]:
    """Run `langgraph dev` on the database `dsn` with offline tools and the offline model
    for the block; yields its API URL and the path of its log (stdout and stderr)."""
    port = free_port()
    env = {**os.environ, **memory_env(dsn)}
    env |= {"WEATHER_PROVIDER": "offline", "STOCK_PROVIDER": "offline"}
    env |= {"LANGGRAPH_NO_VERSION_CHECK": "true", "NO_COLOR": "1"}
    env.pop("OPENAI_API_KEY", None)
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [
                str(LANGGRAPH) if LANGGRAPH.exists() else "langgraph",
                "dev",
                "--no-browser",
                "--no-reload",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
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
