"""A real PgBouncer in front of the test PostgreSQL, started as a subprocess, and the
`Pooler`s the suite runs through.

`start_pgbouncer(server_dsn, ...)` writes a config of its own in a temporary folder (every
database of the server through a `*` entry, trust auth with a one-user `auth_file`, no
Unix socket), starts the `pgbouncer` binary on a free 127.0.0.1 port, waits until a client
connection through it answers, and stops it at the end. The fixtures (`pooler`, and
`pgbouncer` for the tests of PgBouncer itself) are in `tests/database.py`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import asyncpg
import pytest

from src.agent.memory import PostgresMemoryStore
from src.config.settings import Settings
from src.wiring import app_migrations

# Debian installs it in /usr/sbin, which is not on every user's PATH.
_CANDIDATES = ("/usr/sbin/pgbouncer", "/usr/bin/pgbouncer", "/usr/local/bin/pgbouncer")


def pgbouncer_binary() -> str | None:
    """Path of the installed `pgbouncer`, or None."""
    found = shutil.which("pgbouncer")
    if found:
        return found
    return next((path for path in _CANDIDATES if os.access(path, os.X_OK)), None)


def pgbouncer_version(binary: str) -> tuple[int, ...]:
    """`(1, 18, 0)` from `pgbouncer --version`."""
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, check=True)
    match = re.search(r"PgBouncer (\d+)\.(\d+)(?:\.(\d+))?", out.stdout + out.stderr)
    if match is None:
        raise RuntimeError(f"cannot read the version of {binary}: {out.stdout!r}")
    return tuple(int(part or 0) for part in match.groups())


# `max_prepared_statements` (protocol-level prepared statements in transaction mode).
PREPARED_STATEMENTS_SINCE = (1, 21, 0)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class PgBouncer:
    """A running PgBouncer: where it listens and what it forwards to."""

    port: int
    version: tuple[int, ...]
    pool_mode: str
    max_prepared_statements: int
    user: str
    password: str
    directory: Path

    def dsn(self, database: str) -> str:
        """DSN of `database` through PgBouncer."""
        auth = self.user + (f":{self.password}" if self.password else "")
        return f"postgresql://{auth}@127.0.0.1:{self.port}/{database}"

    def dsn_for(self, direct_dsn: str) -> str:
        """`direct_dsn`'s database, reached through PgBouncer."""
        return self.dsn(urlsplit(direct_dsn).path.lstrip("/"))

    @property
    def log(self) -> str:
        """What PgBouncer logged (its log file, else what it wrote before opening it)."""
        for name in ("pgbouncer.log", "stderr.log"):
            path = self.directory / name
            if path.exists() and path.stat().st_size:
                return path.read_text(errors="replace")
        return ""


def _server_address(server_dsn: str) -> tuple[str, int, str, str]:
    parts = urlsplit(server_dsn)
    query = parse_qs(parts.query)
    host = query.get("host", [parts.hostname or "127.0.0.1"])[0]
    port = parts.port or int(query.get("port", ["5432"])[0])
    return host, port, unquote(parts.username or "postgres"), unquote(parts.password or "")


def _run_as(host: str) -> str | None:
    """PgBouncer refuses to run as root: the account to drop to (`-u`), when root. For a
    server reached through a Unix socket, the owner of the socket's folder (an embedded
    PostgreSQL keeps it in its data folder, mode 700, owned by the account it runs as);
    else `postgres`, else `nobody`."""
    if os.geteuid() != 0:
        return None
    if host.startswith("/"):
        owner = pwd.getpwuid(os.stat(host).st_uid).pw_name
        if owner != "root":
            return owner
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    raise RuntimeError("running as root and no unprivileged account to start pgbouncer as")


async def _wait_ready(bouncer: PgBouncer, process: subprocess.Popen, database: str) -> None:
    """Until a client connection through PgBouncer answers a query (it then has reached
    PostgreSQL too), or PgBouncer exits, or 20 seconds pass."""
    deadline = time.monotonic() + 20
    last: BaseException | None = None
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"pgbouncer exited ({process.returncode}):\n{bouncer.log}")
        try:
            conn = await asyncpg.connect(bouncer.dsn(database), timeout=2, statement_cache_size=0)
        except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
            last = exc
            await asyncio.sleep(0.05)  # a retry of the connection, not a guess at readiness
            continue
        try:
            assert await conn.fetchval("SELECT 1") == 1
        finally:
            await conn.close()
        return
    raise RuntimeError(f"pgbouncer not ready after 20 s ({last!r}):\n{bouncer.log}")


@contextlib.contextmanager
def start_pgbouncer(
    server_dsn: str,
    *,
    pool_mode: str = "transaction",
    pool_size: int = 20,
    max_prepared_statements: int = 0,
    binary: str | None = None,
    options: dict[str, object] | None = None,
) -> Iterator[PgBouncer]:
    """A PgBouncer in front of `server_dsn`'s server (`options`: more `[pgbouncer]`
    settings), stopped (SIGTERM, then SIGKILL) and its folder removed at the end."""
    binary = binary or pgbouncer_binary()
    if binary is None:
        raise FileNotFoundError("pgbouncer is not installed")
    version = pgbouncer_version(binary)
    if max_prepared_statements and version < PREPARED_STATEMENTS_SINCE:
        raise ValueError(f"PgBouncer {version} has no max_prepared_statements (needs 1.21)")
    host, port, user, password = _server_address(server_dsn)
    run_as = _run_as(host)
    with tempfile.TemporaryDirectory(prefix="vera-pgbouncer-") as tmp:
        directory = Path(tmp)
        server = f"host={host} port={port} user={user}" + (
            f" password={password}" if password else ""
        )
        lines = [
            "[databases]",
            f"* = {server}",
            "[pgbouncer]",
            "listen_addr = 127.0.0.1",
            "listen_port = {port}",
            "unix_socket_dir =",
            "auth_type = trust",
            f"auth_file = {directory / 'userlist.txt'}",
            f"admin_users = {user}",
            f"pool_mode = {pool_mode}",
            f"default_pool_size = {pool_size}",
            "max_client_conn = 1000",
            # Server connections are not reset between clients in transaction mode (the
            # default): what a client leaves on one (LISTEN, temp objects) stays there.
            "server_reset_query_always = 0",
            "ignore_startup_parameters = extra_float_digits",
            f"logfile = {directory / 'pgbouncer.log'}",
            f"pidfile = {directory / 'pgbouncer.pid'}",
        ]
        if version >= PREPARED_STATEMENTS_SINCE:
            lines.append(f"max_prepared_statements = {max_prepared_statements}")
        lines += [f"{name} = {value}" for name, value in (options or {}).items()]
        (directory / "userlist.txt").write_text(f'"{user}" "{password}"\n')
        if run_as is not None:  # root: the folder must belong to the account it drops to
            account = pwd.getpwnam(run_as)
            os.chown(directory, account.pw_uid, account.pw_gid)
        for attempt in range(5):  # another process may take the free port first
            listen = _free_port()
            config = directory / "pgbouncer.ini"
            config.write_text("\n".join(lines).replace("{port}", str(listen)) + "\n")
            for path in (config, directory / "userlist.txt"):
                path.chmod(0o644)
            command = [binary, *(["-u", run_as] if run_as else []), str(config)]
            # Its output goes to a file, never to a pipe: PgBouncer logs every line to stderr
            # too, and a pipe nobody reads fills up and blocks it (and every client) for good.
            with (directory / "stderr.log").open("ab") as output:
                process = subprocess.Popen(
                    command, stdin=subprocess.DEVNULL, stdout=output, stderr=output, cwd=directory
                )
            bouncer = PgBouncer(
                listen, version, pool_mode, max_prepared_statements, user, password, directory
            )
            try:
                _run_coroutine(_wait_ready(bouncer, process, "postgres"))
                break
            except RuntimeError:
                _stop(process)
                if attempt == 4 or "Address already in use" not in bouncer.log:
                    raise
        try:
            yield bouncer
        finally:
            _stop(process)


def _run_coroutine(coroutine: Any) -> Any:
    """Run `coroutine` to its end from sync code, also when the caller runs in an event loop
    (an async test): on a loop of its own, in a thread."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def require_pgbouncer() -> str:
    """The binary, or skip the test with the reason."""
    binary = pgbouncer_binary()
    if binary is None:
        pytest.skip("pgbouncer is not installed (apt-get install pgbouncer; .ci/run installs it)")
    return binary


def bouncer_store(
    dsn: str, statement_cache: bool = False, max_size: int = 10, direct_dsn: str | None = None
) -> PostgresMemoryStore:
    """A store as the app builds it (its own tables too), on `dsn` (a PgBouncer address)."""
    return PostgresMemoryStore(
        dsn,
        min_size=1,
        max_size=max_size,
        statement_cache=statement_cache,
        extra_migrations=[app_migrations()],
        direct_dsn=direct_dsn,
    )


# -- the poolers: how a test reaches the run's database --------------------------------

# (name, statement cache, PgBouncer's max_prepared_statements); None: no PgBouncer.
POOLERS: dict[str, tuple[bool, int | None]] = {
    "direct": (True, None),
    "pgbouncer": (False, 0),  # the asyncpg statement cache off: works with any PgBouncer
    "pgbouncer-prepared": (True, 200),  # the cache on, PgBouncer's own prepared statements
}
BOUNCERS = [name for name, (_, prepared) in POOLERS.items() if prepared is not None]


@dataclass(frozen=True)
class Pooler:
    """What stands between a test's store or app and PostgreSQL: nothing (`direct`), or a
    PgBouncer in transaction pooling mode (20 server connections per database) with the
    store's statement cache as the variant says. Checks of what was stored go straight to
    PostgreSQL (the `db` fixture)."""

    name: str
    bouncer: PgBouncer | None
    statement_cache: bool

    def dsn(self, direct_dsn: str) -> str:
        """`direct_dsn`'s database, reached through this pooler."""
        return self.bouncer.dsn_for(direct_dsn) if self.bouncer else direct_dsn

    def store(self, direct_dsn: str, max_size: int = 10) -> PostgresMemoryStore:
        """A store as the app builds it (its own tables too), through this pooler."""
        return bouncer_store(self.dsn(direct_dsn), self.statement_cache, max_size)

    def settings(self, direct_dsn: str, **overrides: Any) -> Settings:
        """The API's settings for `direct_dsn`'s database through this pooler."""
        from tests.api_harness import settings_for  # the app, only for the tests that use it

        if self.bouncer is not None:
            # The opt-in docs/pgbouncer.md proposes for PgBouncer's prepared statements.
            overrides = {
                "postgres_memory_statement_cache": self.statement_cache,
                "postgres_memory_pooler_prepared_statements": self.statement_cache,
                **overrides,
            }
        return settings_for(self.dsn(direct_dsn), **overrides)


@contextlib.contextmanager
def start_pooler(name: str, server_dsn: str) -> Iterator[Pooler]:
    """The pooler `name` of `POOLERS` in front of `server_dsn`'s server, for the block;
    skips the test when its PgBouncer is not installed or too old."""
    statement_cache, max_prepared = POOLERS[name]
    if max_prepared is None:
        yield Pooler(name, None, statement_cache)
        return
    binary = require_pgbouncer()
    version = pgbouncer_version(binary)
    if max_prepared and version < PREPARED_STATEMENTS_SINCE:
        pytest.skip(
            f"installed PgBouncer {'.'.join(map(str, version))} has no "
            "max_prepared_statements (1.21+): the statement cache must stay off behind it"
        )
    with start_pgbouncer(
        server_dsn, pool_size=20, max_prepared_statements=max_prepared, binary=binary
    ) as running:
        yield Pooler(name, running, statement_cache)
