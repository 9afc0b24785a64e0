"""`PostgresMemoryStore`: the asyncpg pool, the schema, and read helpers for sessions."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

import asyncpg

from src.agent.memory import sql
from src.agent.memory.codecs import register_builtin_arrays
from src.agent.memory.embedded import EmbeddedPostgres, start_embedded
from src.agent.memory.jsonb import loads_jsonb
from src.agent.memory.migrations import MigrationSet
from src.agent.memory.schema import upgrade_schema
from src.agent.memory.storage_errors import (
    CONNECTION_ERRORS,
    REFUSAL_ERRORS,
    PoolExhaustedError,
    StorageUnavailableError,
    unavailable,
)

__all__ = [
    "CONNECTION_ERRORS",
    "REFUSAL_ERRORS",
    "PoolExhaustedError",
    "PostgresMemoryStore",
    "StorageUnavailableError",
]

logger = logging.getLogger(__name__)
T = TypeVar("T")
_NO_SESSION = uuid.UUID(int=0)  # what the warm-up reads read (their result is dropped)
# PostgreSQL plans a prepared statement anew at each of its first five executions (custom
# plans) before it weighs the generic plan; the sixth makes that (`plancache.c`).
_CUSTOM_PLANS_FIRST = 5


async def _skip_session_reset(conn: asyncpg.Connection) -> None:
    """Release hook of the pool: nothing to undo.

    Our statements leave no session state behind (no SET, LISTEN, cursor or session-level
    advisory lock), so skipping asyncpg's default reset query saves a round trip on every
    release; asyncpg still rolls back a transaction left open.
    """


def _discard(conn: asyncpg.Connection) -> None:
    """Close a pooled connection for good, so the pool replaces it: one the server dropped
    in the middle of a reply must never reach the next caller.

    A connection whose loss the client has already noticed was handed back to the pool
    then (asyncpg detaches it, and any call on it raises `InterfaceError`): nothing to do.
    """
    with contextlib.suppress(asyncpg.exceptions.InterfaceError):
        conn.terminate()


class PostgresMemoryStore:
    """Owns the connection pool of the memory database and its schema.

    `initialize()` opens the pool (falling back to an embedded PostgreSQL in `embedded_dir`
    when one is given and the server at `dsn` is unreachable) and applies the migrations:
    the checkpointer's own, plus `extra_migrations` (an application's tables: sets of its
    own, each numbered on its own and recorded in its own ledger). `close()` undoes both.
    `from_pool()` wraps a pool someone else owns: `close()` then leaves it open.

    A caller waits for a free connection of the pool up to `pool_wait` seconds
    (`PoolExhaustedError` after), and for a new one to open up to `connect_timeout`
    (`StorageUnavailableError` after): one is load, the other an outage. The wait is exact
    for a pool that only this store lends from; `from_pool()`'s pool lent by others too may
    make a caller wait inside the pool, bounded by `connect_timeout` and reported as an
    outage.

    `direct_dsn` names the same database without a connection pooler (PgBouncer) in
    between: `connect()` (LISTEN) and the migrations use it when given (unless the embedded
    fallback is in use). `initialize()` also tells whether a pooler answers at `dsn`
    (`behind_pooler`).
    """

    def __init__(
        self,
        dsn: str,
        *,
        min_size: int = 5,
        max_size: int = 20,
        statement_cache: bool = True,
        connect_timeout: float = 5.0,
        pool_wait: float = 10.0,
        command_timeout: float | None = 30.0,
        embedded_dir: Path | None = None,
        database: str = "veramoney_memory",
        extra_migrations: Sequence[MigrationSet] = (),
        direct_dsn: str | None = None,
        cache_max_bytes: int = 64 * 2**20,
    ) -> None:
        self._dsn = dsn
        self.cache_max_bytes = cache_max_bytes  # of `ConversationCheckpointer`'s message cache
        self.direct_dsn = direct_dsn or None
        self.min_size = min_size
        self.max_size = max_size
        self.statement_cache = statement_cache
        self.connect_timeout = connect_timeout
        self.pool_wait = pool_wait
        self._slots: asyncio.Semaphore | None = None  # free connections of the pool
        self.command_timeout = command_timeout
        self.embedded_dir = (
            Path(embedded_dir).expanduser().resolve() if embedded_dir is not None else None
        )
        self.database = database
        self.extra_migrations = tuple(extra_migrations)
        self.embedded: EmbeddedPostgres | None = None
        self._pool: asyncpg.Pool | None = None
        self._owns_pool = True
        self._migrated = False
        self.dsn_in_use = dsn  # the embedded server's once it is used
        # Whether the pool's connections go through a pooler (None before `initialize()`).
        self.behind_pooler: bool | None = None

    @classmethod
    def from_pool(
        cls,
        pool: asyncpg.Pool,
        *,
        connect_timeout: float = 5.0,
        extra_migrations: Sequence[MigrationSet] = (),
    ) -> PostgresMemoryStore:
        """A store on an open pool that stays the caller's (`close()` does not close it).

        `initialize()` still applies the migrations. `connect()` (a connection of its own)
        needs the DSN, which a pool does not tell: it is unavailable on such a store.
        """
        store = cls("", connect_timeout=connect_timeout, extra_migrations=extra_migrations)
        store._pool = pool
        store._owns_pool = False
        return store

    @property
    def address(self) -> str:
        """`host:port` of the configured server (never the password)."""
        parts = urlsplit(self._dsn)
        query = parse_qs(parts.query)
        host = query.get("host", [parts.hostname or "localhost"])[0]
        port = query.get("port", [str(parts.port or 5432)])[0]
        return f"{host}:{port}"

    def describe(self) -> str:
        """Which database is in use, for the start-up log."""
        if self.embedded is not None:
            return f"embedded PostgreSQL in {self.embedded.data_dir}"
        return f"{self.address}/{self.database}"

    @property
    def pool(self) -> asyncpg.Pool:
        """The open pool; raises if `initialize()` has not run.

        Connections are not reset when released: leave no session state (SET, LISTEN,
        session advisory locks) on one.
        """
        if self._pool is None:
            raise RuntimeError("PostgresMemoryStore.initialize() has not been called")
        return self._pool

    async def _create_pool(self, dsn: str) -> asyncpg.Pool:
        return await asyncpg.create_pool(
            dsn,
            min_size=self.min_size,
            max_size=self.max_size,
            timeout=self.connect_timeout,
            command_timeout=self.command_timeout,
            statement_cache_size=100 if self.statement_cache else 0,
            # Prepared for the connection's life: asyncpg's default drops each statement
            # 300 s after preparing it, to be parsed and custom-planned five times again.
            max_cached_statement_lifetime=0,
            max_inactive_connection_lifetime=300.0,
            reset=_skip_session_reset,
            init=self._set_up_connection,
        )

    async def _set_up_connection(self, conn: asyncpg.Connection) -> None:
        """Init hook of the pool, once per new connection: the built-in array types'
        codecs without introspecting the server (`codecs.py`), and, once the schema is
        there, the reads prepared."""
        register_builtin_arrays(conn)
        if self._migrated:
            await self._prepare_reads(conn)

    async def _prepare_reads(self, conn: asyncpg.Connection) -> None:
        """Prepare `sql.WARM_READS` into the connection's statement cache and plan them:
        each runs six times (for the nil session id, results dropped; one round trip each,
        pipelined by `executemany`), its five custom plans and then its generic one, so the
        reads the connection serves plan nothing (`tests/memory/test_first_read.py`) and a
        new process's first read is one round trip. Skipped with the statement cache off
        (behind a pooler): nothing would be kept."""
        if self.statement_cache:
            for query, args in sql.WARM_READS:
                await conn.executemany(query, [(_NO_SESSION, *args)] * (_CUSTOM_PLANS_FIRST + 1))

    async def _prepare_idle(self, pool: asyncpg.Pool) -> None:
        """`_prepare_reads` on the connections opened before the schema was there."""
        held = [await pool.acquire(timeout=self.connect_timeout) for _ in range(self.min_size)]
        try:
            for conn in held:
                await self._prepare_reads(conn)
        finally:
            for conn in held:
                await pool.release(conn)

    async def initialize(self) -> None:
        """Open the pool and bring the schema to the latest version (idempotent)."""
        if self._pool is not None:
            if self.behind_pooler is None:
                await self._detect_pooler(self._pool)
            if not self._migrated:
                await self._migrate(self._pool)
            return
        try:
            self._pool = await self._create_pool(self._dsn)
            self.dsn_in_use = self._dsn
        except REFUSAL_ERRORS as exc:
            raise StorageUnavailableError(
                f"memory database {self.address} refused the connection "
                f"({type(exc).__name__}: {exc})"
            ) from exc
        except CONNECTION_ERRORS as exc:
            if self.embedded_dir is None:
                raise StorageUnavailableError(
                    f"memory database {self.address} unreachable ({type(exc).__name__}: {exc})"
                ) from exc
            logger.warning(
                "memory database %s unreachable (%s: %s); using the embedded PostgreSQL in %s",
                self.address,
                type(exc).__name__,
                exc,
                self.embedded_dir,
            )
            self.embedded, dsn = await start_embedded(self.embedded_dir, self.database)
            self._pool = await self._create_pool(dsn)
            self.dsn_in_use = dsn
        await self._detect_pooler(self._pool)
        await self._migrate(self._pool)
        await self._prepare_idle(self._pool)

    async def _detect_pooler(self, pool: asyncpg.Pool) -> None:
        """Compare the backend pid of a pooled connection's start-up message with the pid of
        the server process that answers: a pooler (PgBouncer) sends its own cancel key, so
        the two differ behind one. In a transaction, so that with the statement cache on
        its prepare and execute stay on one server connection in transaction pooling."""
        async with self._lend(pool) as conn, conn.transaction():
            self.behind_pooler = conn.get_server_pid() != await conn.fetchval(sql.BACKEND_PID)

    @property
    def _direct(self) -> str | None:
        """The DSN bypassing the pooler, unless the embedded fallback replaced the server."""
        return self.direct_dsn if self.embedded is None else None

    async def _migrate(self, pool: asyncpg.Pool) -> None:
        direct = self._direct
        if direct is not None:  # off the pooler: no DDL under its timeouts
            conn = await asyncpg.connect(direct, timeout=self.connect_timeout)
            try:
                await upgrade_schema(conn, self.extra_migrations)
            finally:
                await conn.close()
        else:
            async with pool.acquire() as conn:
                await upgrade_schema(conn, self.extra_migrations)
        self._migrated = True

    async def close(self) -> None:
        """Close the pool (unless it is the caller's) and stop the embedded server if one
        was started."""
        if self._pool is not None:
            if self._owns_pool:
                await self._pool.close()
                self._migrated = False
            self._pool = None
            self._slots = None
        if self.embedded is not None:
            self.embedded.stop()
            self.embedded = None

    @contextlib.asynccontextmanager
    async def _lend(self, pool: asyncpg.Pool) -> AsyncIterator[asyncpg.Connection]:
        """A pooled connection: a free one waited for up to `pool_wait` seconds (else
        `PoolExhaustedError`), then opened if need be within `connect_timeout` (else a
        connection error, for `run` to map)."""
        if self._slots is None:
            self._slots = asyncio.Semaphore(pool.get_max_size())
        slots = self._slots
        try:
            async with asyncio.timeout(self.pool_wait):
                await slots.acquire()
        except TimeoutError:
            raise PoolExhaustedError(
                f"no free connection in the memory database pool within {self.pool_wait:g} s "
                f"(all {pool.get_max_size()} lent out)"
            ) from None
        try:
            async with pool.acquire(timeout=self.connect_timeout) as conn:
                yield conn
        finally:
            slots.release()  # after the pool has the connection back

    async def run(self, fn: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        """`fn` on a pooled connection; a connection the server dropped is retried once on a
        fresh one, and an unreachable server raises `StorageUnavailableError` (no hang: the
        wait for a new connection is bounded by the connect timeout). A pool whose
        connections all stay lent out for `pool_wait` raises `PoolExhaustedError`."""
        pool = self.pool
        for attempt in (1, 2):
            try:
                async with self._lend(pool) as conn:
                    try:
                        return await fn(conn)
                    except CONNECTION_ERRORS:
                        _discard(conn)
                        # The server dropped one: its idle siblings are likely dead too
                        # (a restart, a proxy cut). Replace them all on their next use, so
                        # the retry does not pick another dead one.
                        await pool.expire_connections()
                        raise
            except PoolExhaustedError:
                raise  # load, not an outage: a second wait would only double it
            except CONNECTION_ERRORS as exc:
                if attempt == 2:
                    raise unavailable(exc) from exc
        raise AssertionError("unreachable")

    async def connect(self) -> asyncpg.Connection:
        """A connection of its own (not pooled) to the same database, e.g. for LISTEN: to
        `direct_dsn` when given, else where the pool connects."""
        dsn = self._direct or self.dsn_in_use
        if not dsn:
            raise RuntimeError("a store made with from_pool() has no DSN to connect with")
        return await asyncpg.connect(dsn, timeout=self.connect_timeout)

    async def ping(self) -> bool:
        """True when the database answers a trivial query."""
        try:
            async with self._lend(self.pool) as conn:
                answer: int = await conn.fetchval(sql.PING, timeout=self.connect_timeout)
                return answer == 1
        except (*CONNECTION_ERRORS, asyncpg.PostgresError, RuntimeError):
            return False

    async def get_messages(self, session_id: uuid.UUID) -> list[dict[str, Any]] | None:
        """The transcript of a session's latest checkpoint, oldest first (with the messages
        of a run still going); None when the session is unknown."""
        row = await self.run(lambda conn: conn.fetchrow(sql.SESSION_TRANSCRIPT, session_id))
        if row is None:
            return None
        shown = loads_jsonb(row["shown"]) if row["shown"] else []
        return shown + (loads_jsonb(row["waiting"]) if row["waiting"] else [])
