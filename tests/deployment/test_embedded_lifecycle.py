"""An embedded PostgreSQL orphaned by a killed service is adopted, then really stopped."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.support import free_port

ROOT = Path(__file__).resolve().parents[2]


def postmasters_of(data_dir: Path) -> list[int]:
    """Pids of `postgres` processes whose command line names `data_dir` (from /proc)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"postgres") and str(data_dir).encode() in argv:
            pids.append(int(entry.name))
    return pids


def start_service(env: dict[str, str], log: Path) -> subprocess.Popen:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "src.api"], cwd=ROOT, env=env, stdout=out, stderr=out
        )


def wait_healthy(proc: subprocess.Popen, port: int, log: Path, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"no healthy service within {timeout}s\n{log.read_text()}")


def test_orphaned_embedded_server_is_adopted_and_stopped_on_a_clean_exit(tmp_path) -> None:
    data = (tmp_path / "pg").resolve()
    api_port = free_port()
    env = {
        **os.environ,
        "POSTGRES_MEMORY_HOST": "127.0.0.1",
        "POSTGRES_MEMORY_PORT": str(free_port()),  # nothing listens there
        "POSTGRES_MEMORY_EMBEDDED_DIR": str(data),
        "POSTGRES_MEMORY_POOL_MIN": "1",
        "POSTGRES_MEMORY_POOL_MAX": "2",
        "API_HOST": "127.0.0.1",
        "API_PORT": str(api_port),
        "OPENAI_API_KEY": "",
        "API_KEY": "",
        "ENVIRONMENT": "test",
        "WEATHER_PROVIDER": "offline",
        "STOCK_PROVIDER": "offline",
        "SHUTDOWN_GRACE_SECONDS": "1",
        "LOG_LEVEL": "INFO",
    }
    log = tmp_path / "service.log"
    first = start_service(env, log)
    second: subprocess.Popen | None = None
    try:
        wait_healthy(first, api_port, log)
        first.kill()  # SIGKILL: no clean-up at all
        first.wait(timeout=10)
        assert postmasters_of(data), "the killed service's PostgreSQL should still run"

        second = start_service(env, log)
        wait_healthy(second, api_port, log)
        assert f"reusing the embedded PostgreSQL already running in {data}" in log.read_text()
        second.send_signal(signal.SIGTERM)
        # uvicorn shuts down cleanly, then re-raises the signal it caught: -SIGTERM.
        assert second.wait(timeout=30) in (0, -signal.SIGTERM), log.read_text()
        assert "embedded PostgreSQL stopped" in log.read_text()
        deadline = time.monotonic() + 10
        while postmasters_of(data) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert postmasters_of(data) == [], log.read_text()
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
        for pid in postmasters_of(data):  # never leave a server behind, even on failure
            os.kill(pid, signal.SIGINT)
