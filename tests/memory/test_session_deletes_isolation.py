"""The checkpointer's deletes of whole sessions run in READ COMMITTED whatever the
database's default isolation: the delete trigger (migration 10) refuses a delete in a
snapshot isolation, so a database set to `default_transaction_isolation = 'repeatable
read'` (or serializable) would otherwise refuse every thread delete, the TTL sweep and
forget (`delete_sessions`), and a prune by deletion, where the foreign keys deleted."""

from __future__ import annotations

import asyncpg
import pytest

from src.agent.memory import ConversationCheckpointer, PostgresMemoryStore, session_id_for
from tests.session_rows import DELETE_PATHS, populate, rows_of

# The library's own paths (the plain statement is the caller's, in the caller's isolation).
LIBRARY_PATHS = sorted(set(DELETE_PATHS) - {"statement"})


@pytest.mark.parametrize("isolation", ["repeatable read", "serializable"])
@pytest.mark.parametrize("path", LIBRARY_PATHS)
async def test_a_delete_path_deletes_under_a_snapshot_default_isolation(
    path: str, isolation: str, empty_dsn: str
) -> None:
    conn = await asyncpg.connect(empty_dsn)
    try:
        name = await conn.fetchval("SELECT current_database()")
        await conn.execute(
            f"ALTER DATABASE {name} SET default_transaction_isolation = '{isolation}'"
        )
    finally:
        await conn.close()
    store = PostgresMemoryStore(empty_dsn, min_size=1, max_size=2)
    await store.initialize()
    conn = await asyncpg.connect(empty_dsn)
    try:
        assert await conn.fetchval("SHOW default_transaction_isolation") == isolation
        thread = "isolation-thread"
        sid = session_id_for(thread)
        await populate(conn, sid)
        await DELETE_PATHS[path](ConversationCheckpointer(store), sid, thread)
        gone = await conn.fetchval("SELECT count(*) FROM conversations WHERE session_id = $1", sid)
        left = await rows_of(conn, [sid])
    finally:
        await conn.close()
        await store.close()
    assert gone == 0
    assert set(left.values()) == {0}
