"""Vera behind a real PgBouncer in transaction pooling mode (`tests/pgbouncer.py`).

Every test that takes the `bouncer` fixture runs in two variants:

- `cache-off`: the asyncpg statement cache off (`POSTGRES_MEMORY_STATEMENT_CACHE=false`),
  the setting that works with any PgBouncer;
- `prepared-statements`: the cache on, with PgBouncer's own prepared-statement support
  (`max_prepared_statements`, PgBouncer >= 1.21); skipped with the installed version's
  number when it is older.

The store, the app's settings and `database_dsn` point at PgBouncer; `db` (what tests use
to look at the database) stays a direct connection. The memory, graph and API tests below
are the suite's own, collected again here. What transaction pooling breaks (LISTEN, the
statement cache without PgBouncer's support, session-level locks) is in
`test_pgbouncer_limits.py`.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

import asyncpg
import pytest
from langgraph.checkpoint.conformance import checkpointer_test, validate
from langgraph.checkpoint.conformance.report import ProgressCallbacks

from src.agent.memory import ConversationCheckpointer, PostgresMemoryStore
from src.agent.memory.migrations import load_migrations
from src.api.app import create_app
from src.wiring import app_migrations
from tests.api import test_api_chat, test_api_failures, test_turn_streams
from tests.api_harness import hundred_slow_turns, settings_for
from tests.fakes import FakeModel
from tests.memory import test_graph, test_memory, test_memory_concurrency, test_memory_contract
from tests.pgbouncer import (
    PREPARED_STATEMENTS_SINCE,
    PgBouncer,
    bouncer_store,
    pgbouncer_version,
    require_pgbouncer,
    start_pgbouncer,
)
from tests.support import with_database


@dataclass(frozen=True)
class Variant:
    bouncer: PgBouncer
    statement_cache: bool


VARIANTS = {
    "cache-off": (False, 0),
    "prepared-statements": (True, 200),
}


@pytest.fixture(scope="module", params=list(VARIANTS), ids=list(VARIANTS))
def bouncer(request: pytest.FixtureRequest, server_dsn: str) -> Iterator[Variant]:
    """PgBouncer (transaction pooling, 20 server connections per database) and whether the
    store's statement cache is on in this variant."""
    binary = require_pgbouncer()
    statement_cache, max_prepared = VARIANTS[request.param]
    version = pgbouncer_version(binary)
    if max_prepared and version < PREPARED_STATEMENTS_SINCE:
        pytest.skip(
            f"installed PgBouncer {'.'.join(map(str, version))} has no "
            "max_prepared_statements (1.21+): the statement cache must stay off behind it"
        )
    with start_pgbouncer(
        server_dsn, pool_size=20, max_prepared_statements=max_prepared, binary=binary
    ) as running:
        yield Variant(running, statement_cache)


# -- the suite's fixtures, pointed at PgBouncer --------------------------------------------


@pytest.fixture(scope="module")
def database_dsn(database_dsn: str, bouncer: Variant) -> str:
    """The run's database, through PgBouncer."""
    return bouncer.bouncer.dsn_for(database_dsn)


@pytest.fixture(scope="module")
def direct_dsn(database_dsn: str, server_dsn: str) -> str:
    """The run's database, straight to PostgreSQL."""
    return with_database(server_dsn, urlsplit(database_dsn).path.lstrip("/"))


@pytest.fixture
async def db(direct_dsn: str) -> AsyncIterator[asyncpg.Connection]:
    """The tests' own look at the database: a direct connection, not through PgBouncer."""
    conn = await asyncpg.connect(direct_dsn)
    try:
        yield conn
    finally:
        await conn.close()


@pytest.fixture
async def store(database_dsn: str, bouncer: Variant) -> AsyncIterator[PostgresMemoryStore]:
    """An initialized store whose pool goes through PgBouncer (migrations too)."""
    store = bouncer_store(database_dsn, bouncer.statement_cache)
    await store.initialize()
    try:
        yield store
    finally:
        await store.close()


@pytest.fixture(autouse=True)
def statement_cache_setting(request: pytest.FixtureRequest, monkeypatch) -> None:
    """`POSTGRES_MEMORY_STATEMENT_CACHE` of the variant, for the apps the tests start."""
    if "bouncer" in request.fixturenames:
        variant: Variant = request.getfixturevalue("bouncer")
        monkeypatch.setenv("POSTGRES_MEMORY_STATEMENT_CACHE", str(variant.statement_cache).lower())
        # The opt-in docs/pgbouncer.md proposes for PgBouncer's prepared statements.
        monkeypatch.setenv(
            "POSTGRES_MEMORY_POOLER_PREPARED_STATEMENTS", str(variant.statement_cache).lower()
        )


client = test_api_chat.client  # the API tests' client fixture, on the settings above


async def test_the_apps_here_use_the_variants_statement_cache(
    database_dsn: str, bouncer: Variant
) -> None:
    """The reused API tests build their settings with `settings_for(database_dsn)`: the
    environment variable above is what sets their statement cache."""
    app = create_app(settings_for(database_dsn), model=FakeModel())
    async with app.router.lifespan_context(app):
        assert app.state.store.statement_cache is bouncer.statement_cache
        assert app.state.store.address == f"127.0.0.1:{bouncer.bouncer.port}"


# -- the memory tests: put/get/list checkpoints, writes, concurrent writers ----------------

test_transcript_format_and_plain_sql = test_memory.test_transcript_format_and_plain_sql
test_exact_round_trip_of_rich_messages = test_memory.test_exact_round_trip_of_rich_messages
test_hostile_text_round_trips = test_memory.test_hostile_text_round_trips
test_time_travel_after_removal_and_replacement = (
    test_memory.test_time_travel_after_removal_and_replacement
)
test_subgraph_messages_stay_out_of_transcript = (
    test_memory.test_subgraph_messages_stay_out_of_transcript
)
test_concurrent_calls_run_in_parallel = test_memory.test_concurrent_calls_run_in_parallel
test_sync_methods_from_a_thread_and_clear_error_on_loop = (
    test_memory.test_sync_methods_from_a_thread_and_clear_error_on_loop
)
test_copied_and_run_deleted_threads_keep_one_true_history = (
    test_memory.test_copied_and_run_deleted_threads_keep_one_true_history
)
test_concurrent_forks_writes_and_reads_store_exactly_what_was_put = (
    test_memory_concurrency.test_concurrent_forks_writes_and_reads_store_exactly_what_was_put
)
test_graph_run_with_state_pollers_on_the_same_thread_stays_exact = (
    test_memory_concurrency.test_graph_run_with_state_pollers_on_the_same_thread_stays_exact
)
test_transcript_is_the_current_branch_after_forks_and_edits = (
    test_memory_concurrency.test_transcript_is_the_current_branch_after_forks_and_edits
)
test_prune_refuses_a_single_string = test_memory_contract.test_prune_refuses_a_single_string
test_upper_and_lower_case_uuid_threads_share_one_conversation = (
    test_memory_contract.test_upper_and_lower_case_uuid_threads_share_one_conversation
)


async def test_conformance_suite_through_pgbouncer(database_dsn: str, bouncer: Variant) -> None:
    """LangGraph's checkpointer conformance suite (put, get, list, writes, delete, ...)."""
    store = bouncer_store(database_dsn, bouncer.statement_cache, max_size=5)

    async def lifespan() -> AsyncIterator[None]:
        await store.initialize()
        yield
        await store.close()

    @checkpointer_test(name="ConversationCheckpointer", lifespan=lifespan)
    async def factory() -> AsyncIterator[ConversationCheckpointer]:
        yield ConversationCheckpointer(store)

    report = await validate(factory, progress=ProgressCallbacks.quiet())
    failures = {n: r.failures for n, r in report.results.items() if not r.passed}
    assert not failures, failures


# -- a graph conversation ------------------------------------------------------------------

test_one_tool = test_graph.test_one_tool
test_both_tools_in_one_turn_answer_from_results = (
    test_graph.test_both_tools_in_one_turn_answer_from_results
)


async def test_memory_across_turns_and_a_new_pool(database_dsn: str, bouncer: Variant) -> None:
    thread = str(uuid.uuid4())
    for question, answer in (("Hi, my name is Ana", None), ("What is my name?", "Ana")):
        store = bouncer_store(database_dsn, bouncer.statement_cache, max_size=2)
        await store.initialize()
        try:
            graph = test_graph.build_graph(
                test_graph.OFFLINE, checkpointer=ConversationCheckpointer(store)
            )
            messages = await test_graph.ask(graph, thread, question)
        finally:
            await store.close()
    assert answer in messages[-1].content and len(messages) == 4


# -- the API: concurrent sessions, session_busy across workers, leases, replay -------------

test_tool_turn_streams_every_event_in_order = (
    test_api_chat.test_tool_turn_streams_every_event_in_order
)
test_two_concurrent_turns_on_one_session_never_fork = (
    test_api_failures.test_two_concurrent_turns_on_one_session_never_fork
)
test_a_crashed_workers_lease_expires = test_api_failures.test_a_crashed_workers_lease_expires
test_client_disconnect_mid_stream_still_stores_a_whole_turn = (
    test_api_failures.test_client_disconnect_mid_stream_still_stores_a_whole_turn
)
# Passes through PgBouncer only thanks to the followers' one-second poll
# (test_pgbouncer_limits.py).
test_a_client_that_dropped_replays_and_follows_its_turn_on_another_worker = (
    test_turn_streams.test_a_client_that_dropped_replays_and_follows_its_turn_on_another_worker
)


async def test_hundred_slow_sessions_complete_on_a_pool_of_twenty(
    database_dsn: str, db: asyncpg.Connection
) -> None:
    """`test_api_failures`' test of the same name, with the default 5-second wait for a
    pooled connection instead of 1 second: on this 2-core VM, where PgBouncer takes its
    share of the CPU beside PostgreSQL, the app and the clients, 100 sessions arriving at
    once on a cold pool lost 0-6 turns to `storage_unavailable` (pool acquire timeouts)
    with the 1-second wait (none directly, none through PgBouncer with 5 server
    connections)."""
    settings = settings_for(database_dsn, postgres_memory_pool_max=20, rate_limit_per_minute=1000)
    await hundred_slow_turns(settings, db)


# -- migrations ----------------------------------------------------------------------------


@pytest.fixture
def empty_dsn(empty_dsn: str, bouncer: Variant) -> str:
    """A brand-new empty database, through PgBouncer."""
    return bouncer.bouncer.dsn_for(empty_dsn)


async def test_migrations_apply_once_when_workers_start_together(
    empty_dsn: str, bouncer: Variant, server_dsn: str
) -> None:
    """`pg_advisory_xact_lock` is taken and released inside the migrations' one transaction,
    which PgBouncer keeps on one server connection: it serializes through transaction
    pooling as it does directly."""
    stores = [bouncer_store(empty_dsn, bouncer.statement_cache) for _ in range(4)]
    try:
        await asyncio.gather(*(s.initialize() for s in stores))
    finally:
        await asyncio.gather(*(s.close() for s in stores))
    direct = await asyncpg.connect(with_database(server_dsn, urlsplit(empty_dsn).path[1:]))
    try:
        versions = await direct.fetch("SELECT version FROM vera_schema_migrations ORDER BY 1")
        held = await direct.fetchval(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
        )  # none left behind on a pooled server connection
    finally:
        await direct.close()
    expected = sorted(m.version for m in [*load_migrations(), *app_migrations()])
    assert [r["version"] for r in versions] == expected
    assert held == 0
