"""`python -m src.api` as deployed: server processes on free ports, and the Redis they may
share."""

from __future__ import annotations

import os
import signal
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


def server_environment(dsn: str, **env: str) -> dict[str, str]:
    """The environment of a `python -m src.api` on `dsn` (no model key, no API key)."""
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
    return environ


class Worker:
    """One `python -m src.api` process that a test may kill, freeze and start again."""

    def __init__(self, environ: dict[str, str], log_path: Path) -> None:
        self.environ = environ
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None
        self.url = ""

    def start(self) -> None:
        """Start on a free port; return once it answers `/health`."""
        self.launch()
        self.ready()

    def launch(self) -> None:
        """Start on a free port (without waiting: `ready`)."""
        port = free_port()
        with self.log_path.open("a") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "src.api"],
                cwd=self.log_path.parent,
                env={**self.environ, "API_PORT": str(port)},
                stdout=log,
                stderr=log,
            )
        self.url = f"http://127.0.0.1:{port}"

    def ready(self) -> None:
        """Return once it answers `/health`."""
        assert self.process is not None
        deadline = time.monotonic() + 120
        while True:
            assert self.process.poll() is None, self.log_path.read_text()
            try:
                httpx.head(f"{self.url}/health", timeout=2)
                return
            except httpx.TransportError:
                assert time.monotonic() < deadline, "server did not start"
                time.sleep(0.1)

    def signal(self, number: int) -> None:
        assert self.process is not None
        os.kill(self.process.pid, number)

    def kill(self) -> None:
        """SIGKILL, and reap it."""
        assert self.process is not None
        self.process.kill()
        self.process.wait(timeout=30)

    def stop(self) -> None:
        """Terminate (after a SIGCONT, should it be frozen), and reap it."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)
            self.process.terminate()
            self.process.wait(timeout=30)


@contextmanager
def workers(dsn: str, logs: list[Path], **env: str) -> Iterator[list[Worker]]:
    """A started `Worker` per log file, stopped at the end of the block."""
    started = [Worker(server_environment(dsn, **env), log_path) for log_path in logs]
    try:
        for worker in started:
            worker.launch()
        for worker in started:
            worker.ready()
        yield started
    finally:
        for worker in started:
            worker.stop()


@contextmanager
def server_processes(dsn: str, logs: list[Path], **env: str) -> Iterator[list[str]]:
    """`python -m src.api` (as deployed), one per log file, started side by side on free
    ports; yields their base URLs."""
    environ = server_environment(dsn, **env)
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


async def stored(url: str, key: str, tid: str) -> list[tuple[str, str]]:
    """The session's transcript as the server at `url` answers it: (role, content)s."""
    async with httpx.AsyncClient(base_url=url, headers={"X-API-Key": key}, timeout=60) as http:
        messages = (await http.get(f"/sessions/{tid}/messages")).json()["messages"]
    return [(m["role"], m["content"]) for m in messages]
