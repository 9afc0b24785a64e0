"""The rate limits when their shared storage (Redis) fails (issue 23, point 11), against the
real server: a black-holed Redis (it takes connections and never answers) costs a request
at most the limiter's 100 ms bound, not seconds, and a refused or black-holed one never
lifts a limit: each process counts in its own memory meanwhile (the failed-auth limit of
3 a minute still answers the 4th wrong key 429), and `vera_rate_limit_fallbacks_total`
counts those checks. (The limiter's own logic: tests/unit/test_limit_storage.py.)"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path

import httpx
import pytest

from tests.processes import server_processes
from tests.support import free_port

KEY = "limits-key-0123456789abcdefghijklmnop"
WRONG = "wrong-key-0123456789abcdefghijklmnop"


class BlackHole:
    """A TCP server that accepts connections, reads nothing and never answers."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.connections: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.connections.append(conn)

    def close(self) -> None:
        self.listener.close()
        for conn in self.connections:
            conn.close()


@pytest.fixture
def black_hole() -> Iterator[BlackHole]:
    hole = BlackHole()
    try:
        yield hole
    finally:
        hole.close()


METRICS_PORT = free_port()  # metrics without a key: readable once the address is blocked


def limited_server(dsn: str, folder: Path, redis_port: int) -> AbstractContextManager[list[str]]:
    """The server with its limits counted in Redis at `redis_port`; yields `[its URL]`."""
    return server_processes(
        dsn,
        [folder / "server.log"],
        API_KEY=KEY,
        RATE_LIMIT_STORAGE_URI=f"redis://127.0.0.1:{redis_port}/0",
        AUTH_FAILURES_PER_MINUTE="3",
        RATE_LIMIT_PER_MINUTE="1000",
        METRICS_PORT=str(METRICS_PORT),
    )


def wrong_key_statuses(base: str, n: int) -> list[int]:
    return [
        httpx.get(f"{base}/sessions", headers={"X-API-Key": WRONG}, timeout=5).status_code
        for _ in range(n)
    ]


def fallbacks() -> float:
    text = httpx.get(f"http://127.0.0.1:{METRICS_PORT}/metrics", timeout=5).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("vera_rate_limit_fallbacks_total{")
    )


def test_a_refused_redis_keeps_the_failed_auth_limit(database_dsn: str, tmp_path: Path) -> None:
    closed = free_port()  # nothing listens there: every connection is refused
    with limited_server(database_dsn, tmp_path, closed) as (base,):
        assert wrong_key_statuses(base, 6) == [401, 401, 401, 429, 429, 429]
        assert httpx.get(f"{base}/sessions", headers={"X-API-Key": KEY}).status_code == 429
        assert fallbacks() >= 1


def test_a_black_holed_redis_does_not_hold_requests(
    database_dsn: str, tmp_path: Path, black_hole: BlackHole
) -> None:
    """Twenty keyed requests with a 3 s client timeout: each would wait for Redis (seconds,
    the connection never answers); now the first waits at most 100 ms, and the next ones,
    until the storage is tried again, do not wait at all."""
    with limited_server(database_dsn, tmp_path, black_hole.port) as (base,):
        with httpx.Client(base_url=base, headers={"X-API-Key": KEY}, timeout=3) as client:
            for _ in range(20):
                assert client.get("/sessions").status_code == 200
        assert len(black_hole.connections) < 20  # not a connection attempt per request
        assert wrong_key_statuses(base, 6) == [401, 401, 401, 429, 429, 429]
        assert fallbacks() >= 1
