"""The checkpointer's stored functions, each in its current form only.

`vera_<name>.sql` holds the one `CREATE OR REPLACE FUNCTION vera_<name>` of that name (read
through `importlib.resources`, so they ship in the wheel). `schema.py` applies them after
the migrations, in the same transaction under the same advisory lock: a file runs when the
content hash recorded on its function (the function's COMMENT) is not the file's, so an
unchanged function is left alone and one a migration dropped (a signature change needs a
drop: `CREATE OR REPLACE` can't change a signature) is created again.

They are PL/pgSQL so that each session plans their statements once and reuses the plans (a
SQL function that cannot be inlined is planned again at every call). The two write entry
points (`vera_put_checkpoint`, `vera_put_writes`) run, with everything they call, under
`plan_cache_mode = force_generic_plan`: by default a connection plans each statement anew
at its first five executions and keeps planning one whose generic plan looks dearer, which
was most of a short conversation's server time (issue 28). And under `enable_seqscan =
off`: every statement of a write looks its rows up by key, and a plan made while the tables
were nearly empty (a new database, or autovacuum off) would otherwise stay a sequential scan
for the connection's life (`tests/memory/test_write_plans.py`).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib.resources import files

import asyncpg

from src.agent.memory import sql

_FILE_PATTERN = re.compile(r"^(vera_[a-z0-9_]+)\.sql$")


@dataclass(frozen=True)
class StoredFunction:
    """One function: its name, its SQL, and the hash recorded once it is applied."""

    name: str
    sql: str

    @property
    def digest(self) -> str:
        return "sha256:" + hashlib.sha256(self.sql.encode()).hexdigest()


def load_functions() -> list[StoredFunction]:
    """The function files of this package, by name; `ValueError` for a file that is not
    named after the one function it defines."""
    found = []
    for path in sorted(files(__name__).iterdir(), key=lambda p: p.name):
        if not path.name.endswith(".sql"):
            continue
        match = _FILE_PATTERN.match(path.name)
        text = path.read_text(encoding="utf-8")
        if match is None or len(re.findall(r"\bCREATE OR REPLACE FUNCTION\b", text)) != 1:
            raise ValueError(f"{path.name}: one CREATE OR REPLACE FUNCTION per vera_<name>.sql")
        if not re.search(rf"\bCREATE OR REPLACE FUNCTION {match[1]}\(", text):
            raise ValueError(f"{path.name} does not define {match[1]}")
        found.append(StoredFunction(match[1], text))
    return found


async def stale_functions(
    conn: asyncpg.Connection, functions: list[StoredFunction]
) -> list[StoredFunction]:
    """The functions whose recorded hash is not their file's (missing ones too)."""
    rows = await conn.fetch(sql.FUNCTION_DIGESTS, [f.name for f in functions])
    recorded = {r["name"]: r["digest"] for r in rows}
    return [f for f in functions if recorded.get(f.name) != f.digest]


async def apply_functions(conn: asyncpg.Connection) -> list[str]:
    """Create or replace every stale function and record its hash; returns their names. The
    caller holds the migrations' lock, in their transaction."""
    stale = await stale_functions(conn, load_functions())
    for function in stale:
        await conn.execute(function.sql)
        await conn.execute(sql.record_function(function.name, function.digest))
    return [f.name for f in stale]
