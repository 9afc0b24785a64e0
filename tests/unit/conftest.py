"""The unit tier: pure logic, no database, seconds for the whole folder."""

from __future__ import annotations

import pytest

# The fixtures of tests/database.py: each one needs a PostgreSQL server.
DATABASE_FIXTURES = frozenset(
    {"server_dsn", "database_dsn", "store", "saver", "db", "empty_dsn", "pooler"}
)


@pytest.fixture(autouse=True)
def _no_database(request: pytest.FixtureRequest) -> None:
    used = DATABASE_FIXTURES & set(request.fixturenames)
    if used:
        pytest.fail(
            f"a unit test asks for the database ({', '.join(sorted(used))}): "
            "move it to tests/memory or tests/api"
        )
