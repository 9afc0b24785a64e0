"""Every SQL statement of the checkpointer, in one place. All are parameterized."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from langchain_core.runnables import RunnableConfig

# The session's messages from seq $2 on (transcript or other branches), with the
# conversation row's identity. When the transcript shows seqs 0, 1, ... in order and no
# other branch holds a seq from $2 on (a linear conversation), that is the transcript's
# slice from position $2, cut in C; `vera_messages_from` (which expands the whole array and
# joins it to the seqs) answers any other case.
MESSAGES_FROM = """
SELECT c.id, (CASE
    WHEN l.linear AND l.n > $2 THEN
        jsonb_path_query_array(c.messages, format('$[%s to last]', $2)::jsonpath)
    WHEN l.linear THEN NULL
    ELSE vera_messages_from($1, $2) END)::text AS tail
FROM conversations c LEFT JOIN transcript_heads h ON h.session_id = c.session_id
CROSS JOIN LATERAL (SELECT cardinality(h.seqs) AS n,
    h.seqs IS NOT NULL
    AND h.seqs = ARRAY(SELECT generate_series(0, cardinality(h.seqs) - 1))
    AND NOT EXISTS (SELECT FROM conversation_messages m
        WHERE m.session_id = $1 AND m.seq >= $2) AS linear) AS l
WHERE c.session_id = $1"""

# All the session's messages (`vera_messages_from($1, 0)` without its server-side walk):
# the transcript as stored, the seqs it shows, and the other branches' messages, merged
# by seq in Python. One statement: one snapshot.
MESSAGES_ALL = """
SELECT c.id, c.messages::text AS shown, h.seqs,
    (SELECT array_agg(m.seq ORDER BY m.seq) FROM conversation_messages m
        WHERE m.session_id = $1) AS other_seqs,
    (SELECT jsonb_agg(m.element ORDER BY m.seq) FROM conversation_messages m
        WHERE m.session_id = $1)::text AS others
FROM conversations c LEFT JOIN transcript_heads h ON h.session_id = c.session_id
WHERE c.session_id = $1"""

# `aput` in one round trip (`migrations/0008_transcript_per_turn.sql`): $1 session, $2 ns,
# $3-$6 blob columns, $7-$11 checkpoint columns, $12 transcript channel, $13 its seqs,
# $14 new elements, $15-$16 the cached copy the plan was made from, $17 the turn's lease,
# $18 whether the run goes on (the transcript may show the new messages at its end), $19
# the head the write must continue (this process wrote it; another writer since: VR003).
PUT_CHECKPOINT = """
SELECT row_id, next_seq, applied FROM vera_put_checkpoint(
    $1, $2, $3::text[], $4::text[], $5::text[], $6::bytea[], $7, $8, $9, $10::jsonb,
    $11::jsonb, $12, $13::int[], $14::jsonb, $15, $16, $17, $18, $19)"""

# The session's conversation row, created if missing, locked until the transaction ends.
LOCK_CONVERSATION = "SELECT row_id FROM vera_conversation_row($1, true)"

# Pending writes of a task ($6-$9 columns, $10 upsert, $11 lease, $12 the run stops here:
# show the transcript's waiting messages); returns the conversation's id and whether this
# statement created it.
PUT_WRITES = """
SELECT row_id, created FROM vera_put_writes(
    $1, $2, $3, $4, $5, $6::int[], $7::text[], $8::text[], $9::bytea[], $10, $11, $12)"""

# A checkpoint row with its channel blobs and pending writes, in one round trip; the rows
# come from a FROM clause appended to it, aliased `c`. A checkpoint older than format v4
# also gets the `Send`s its parent left pending (`__pregel_tasks`, LangGraph's `TASKS`
# channel), which it reads as its own value (`TupleBuilder.build`); for newer ones that
# sub-select's condition is false before any lookup. Writes are in LangGraph's order
# (`writes_sort_key`, Python's code point order): `COLLATE "C"` whatever the database's.
_TUPLE_COLUMNS = """
SELECT c.session_id, c.thread_id, c.checkpoint_ns, c.checkpoint_id, c.parent_checkpoint_id,
    c.checkpoint::text AS checkpoint, c.metadata::text AS metadata,
    (SELECT cv.id FROM conversations cv WHERE cv.session_id = c.session_id) AS conversation_id,
    (SELECT array_agg((v.channel, b.type, b.blob))
        FROM jsonb_each_text(c.checkpoint -> 'channel_versions') AS v(channel, version)
        -- LIMIT 1 keeps this a primary-key lookup per channel, never a scan of the table.
        CROSS JOIN LATERAL (SELECT b.type, b.blob FROM checkpoint_blobs b
            WHERE b.session_id = c.session_id AND b.checkpoint_ns = c.checkpoint_ns
                AND b.channel = v.channel AND b.version = v.version LIMIT 1) b) AS blobs,
    (SELECT array_agg((w.task_id, w.channel, w.type, w.blob)
            ORDER BY w.task_path COLLATE "C", w.task_id COLLATE "C", w.idx)
        FROM checkpoint_writes w WHERE w.session_id = c.session_id
            AND w.checkpoint_ns = c.checkpoint_ns AND w.checkpoint_id = c.checkpoint_id) AS writes,
    (SELECT array_agg((w.type, w.blob)
            ORDER BY w.task_path COLLATE "C", w.task_id COLLATE "C", w.idx)
        FROM checkpoint_writes w WHERE (c.checkpoint ->> 'v')::int < 4
            AND w.session_id = c.session_id AND w.checkpoint_ns = c.checkpoint_ns
            AND w.checkpoint_id = c.parent_checkpoint_id AND w.channel = '__pregel_tasks'
    ) AS sends
"""

# The rows are chosen inside a LIMIT sub-select, which PostgreSQL never flattens, so the
# projection's sub-selects run once per row returned whatever plan is cached (a generic
# plan cached while the tables were empty once evaluated them for every checkpoint of the
# session, below the sort: reads grew with the square of the conversation).
SELECT_LATEST_TUPLE = (
    _TUPLE_COLUMNS  # noqa: S608 (constant SQL joined to constant SQL)
    + """FROM (
    SELECT * FROM checkpoints WHERE session_id = $1 AND checkpoint_ns = $2
    ORDER BY checkpoint_id DESC LIMIT 1
) AS c"""
)

SELECT_TUPLE_BY_ID = (
    _TUPLE_COLUMNS  # noqa: S608 (constant SQL joined to constant SQL)
    + """FROM (
    SELECT * FROM checkpoints
    WHERE session_id = $1 AND checkpoint_ns = $2 AND checkpoint_id = $3
    LIMIT 1
) AS c"""
)

# A page of `alist`: "{where}" and "{limit}" are filled by `list_query` (below) with
# placeholders only (never with values).
SELECT_TUPLES_PAGE = (
    _TUPLE_COLUMNS  # noqa: S608 (constant SQL joined to constant SQL)
    + """FROM (
    SELECT * FROM checkpoints c {where}
    ORDER BY c.checkpoint_id DESC, c.session_id DESC, c.checkpoint_ns DESC LIMIT {limit}
) AS c
ORDER BY c.checkpoint_id DESC, c.session_id DESC, c.checkpoint_ns DESC"""
)

# Blobs of `$1` sessions that no remaining checkpoint refers to.
DELETE_UNREFERENCED_BLOBS = """
DELETE FROM checkpoint_blobs b
WHERE b.session_id = ANY($1::uuid[])
AND (b.session_id, b.checkpoint_ns, b.channel, b.version) NOT IN (
    SELECT c.session_id, c.checkpoint_ns, v.key, v.value
    FROM checkpoints c, jsonb_each_text(c.checkpoint -> 'channel_versions') AS v
    WHERE c.session_id = ANY($1::uuid[]))"""

DELETE_RUNS = """
WITH gone AS (
    DELETE FROM checkpoints WHERE run_id = ANY($1::text[])
    RETURNING session_id, checkpoint_ns, checkpoint_id
), writes AS (
    DELETE FROM checkpoint_writes w USING gone g
    WHERE w.session_id = g.session_id AND w.checkpoint_ns = g.checkpoint_ns
        AND w.checkpoint_id = g.checkpoint_id
)
SELECT DISTINCT session_id FROM gone"""

DELETE_SESSIONS = "DELETE FROM conversations WHERE session_id = ANY($1::uuid[])"

# `delete_sessions`: the sessions that existed, and the bytes their rows took as stored
# (TOAST included, compressed as it is) in each of the checkpointer's tables, measured
# before the delete in the same transaction.
DELETE_SESSIONS_RETURNING = """
DELETE FROM conversations WHERE session_id = ANY($1::uuid[]) RETURNING session_id"""

SESSION_TABLES = (
    "conversations",
    "checkpoints",
    "checkpoint_blobs",
    "checkpoint_writes",
    "conversation_messages",
    "transcript_heads",
)
_TABLE_BYTES = """(SELECT COALESCE(sum(pg_column_size(t.*)), 0) FROM {table} AS t
    WHERE t.session_id = ANY($1::uuid[]))"""
SESSIONS_BYTES = "SELECT " + " + ".join(_TABLE_BYTES.format(table=t) for t in SESSION_TABLES)

# The tips of a session's branches: its root checkpoints that no root checkpoint
# continues, newest first, each with the seqs of its transcript (channel $2; NULL when the
# channel holds something other than messages) and whether the transcript shows it.
BRANCH_TIPS = """
SELECT c.checkpoint_id, c.created_at,
    vera_checkpoint_seqs(c.session_id, c.checkpoint, $2) AS seqs,
    c.checkpoint_id IS NOT DISTINCT FROM h.checkpoint_id AS shown
FROM checkpoints c LEFT JOIN transcript_heads h ON h.session_id = c.session_id
WHERE c.session_id = $1 AND c.checkpoint_ns = ''
    AND NOT EXISTS (SELECT FROM checkpoints k WHERE k.session_id = c.session_id
        AND k.checkpoint_ns = '' AND k.parent_checkpoint_id = c.checkpoint_id)
ORDER BY c.checkpoint_id DESC"""

COPY_CONVERSATION = """
INSERT INTO conversations (session_id, messages)
SELECT $2, messages FROM conversations WHERE session_id = $1
ON CONFLICT (session_id) DO UPDATE SET messages = EXCLUDED.messages, updated_at = NOW()
RETURNING id"""

COPY_MESSAGES = """
INSERT INTO conversation_messages (session_id, seq, element)
SELECT $2, seq, element FROM conversation_messages WHERE session_id = $1
ON CONFLICT DO NOTHING"""

COPY_HEAD = """
INSERT INTO transcript_heads (session_id, checkpoint_id, seqs, pending, version, next_seq)
SELECT $2, checkpoint_id, seqs, pending, version, next_seq
FROM transcript_heads WHERE session_id = $1
ON CONFLICT (session_id) DO UPDATE SET checkpoint_id = EXCLUDED.checkpoint_id,
    seqs = EXCLUDED.seqs, pending = EXCLUDED.pending, version = EXCLUDED.version,
    next_seq = EXCLUDED.next_seq"""

# After checkpoints were deleted: each session's transcript shows its latest checkpoint.
REFRESH_TRANSCRIPTS = """
SELECT vera_refresh_transcript(s, $2) FROM unnest($1::uuid[]) AS s ORDER BY s"""

TARGET_HAS_CHECKPOINTS = "SELECT EXISTS (SELECT 1 FROM checkpoints WHERE session_id = $1)"

COPY_CHECKPOINTS = """
INSERT INTO checkpoints (session_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id,
    thread_id, checkpoint, metadata)
SELECT $2, checkpoint_ns, checkpoint_id, parent_checkpoint_id, $3, checkpoint, metadata
FROM checkpoints WHERE session_id = $1"""

COPY_BLOBS = """
INSERT INTO checkpoint_blobs (session_id, checkpoint_ns, channel, version, type, blob)
SELECT $2, checkpoint_ns, channel, version, type, blob
FROM checkpoint_blobs WHERE session_id = $1"""

COPY_WRITES = """
INSERT INTO checkpoint_writes (session_id, checkpoint_ns, checkpoint_id, task_id, idx,
    channel, type, blob, task_path)
SELECT $2, checkpoint_ns, checkpoint_id, task_id, idx, channel, type, blob, task_path
FROM checkpoint_writes WHERE session_id = $1"""

# The store's reads and deletes (`store.py`).
PING = "SELECT 1"

# The pid of the server process that answers (a pooler in between reports another one).
BACKEND_PID = "SELECT pg_backend_pid()"

# The transcript of the latest checkpoint: what `conversations.messages` shows, then the
# messages of a run still going (or cut short) that wait to be shown at its end.
SESSION_TRANSCRIPT = """
SELECT c.messages::text AS shown,
    (SELECT jsonb_agg(m.element ORDER BY p.ord)
        FROM unnest(h.pending) WITH ORDINALITY AS p(seq, ord)
        JOIN conversation_messages m ON m.session_id = c.session_id AND m.seq = p.seq
    )::text AS waiting
FROM conversations c LEFT JOIN transcript_heads h ON h.session_id = c.session_id
WHERE c.session_id = $1"""

# The sessions' leases (`leases.py`). A lease is taken when free or expired (`took_over`:
# an expired row was updated, not a new one inserted).
TAKE_LEASE = """
INSERT INTO turn_leases (session_id, run_id, expires_at)
VALUES ($1, $2, clock_timestamp() + make_interval(secs => $3))
ON CONFLICT (session_id) DO UPDATE
SET run_id = EXCLUDED.run_id, expires_at = EXCLUDED.expires_at
WHERE turn_leases.expires_at < clock_timestamp()
RETURNING xmax::text <> '0' AS took_over"""

RENEW_LEASE = """
UPDATE turn_leases SET expires_at = clock_timestamp() + make_interval(secs => $3)
WHERE session_id = $1 AND run_id = $2"""

RELEASE_LEASE = "DELETE FROM turn_leases WHERE session_id = $1 AND run_id = $2"

LEASE_HELD = """
SELECT EXISTS (SELECT FROM turn_leases WHERE session_id = $1 AND expires_at > clock_timestamp())"""

# A minute past expiry, a lease is no one's (a holder still running would have renewed).
DELETE_EXPIRED_LEASES = """
DELETE FROM turn_leases WHERE expires_at < clock_timestamp() - interval '1 minute'"""

# The embedded server's database (`embedded.py`).
DATABASE_EXISTS = "SELECT 1 FROM pg_database WHERE datname = $1"


def create_database(name: str) -> str:
    """`CREATE DATABASE` of `name`, quoted as an identifier (it cannot be a parameter)."""
    return 'CREATE DATABASE "{}"'.format(name.replace('"', '""'))


# Schema migrations (`schema.py`, `migrations/__init__.py`): one transaction under an
# advisory lock; each owner's ledger table, and the one all owners shared before.
MIGRATIONS_LOCK = "SELECT pg_advisory_xact_lock($1)"

TABLE_EXISTS = "SELECT to_regclass($1) IS NOT NULL"

LEGACY_LEDGER = "vera_schema_migrations"
LEGACY_HOLDS = "SELECT EXISTS (SELECT FROM vera_schema_migrations WHERE name = ANY($1::text[]))"
LEGACY_HOLDS_ANY = "SELECT EXISTS (SELECT FROM vera_schema_migrations)"
TAKE_LEGACY_ROWS = """
DELETE FROM vera_schema_migrations WHERE name = ANY($1::text[]) RETURNING name, applied_at"""
DROP_LEGACY_LEDGER = "DROP TABLE vera_schema_migrations"


@dataclass(frozen=True)
class LedgerStatements:
    """The statements of one ledger table (`version`, `name`, `applied_at`)."""

    create: str
    applied: str
    record: str
    adopt: str


def ledger(table: str) -> LedgerStatements:
    """The statements of ledger `table` (a plain lower-case name, checked by
    `MigrationSet`: an identifier cannot be a parameter)."""
    return LedgerStatements(
        create=f"""
CREATE TABLE IF NOT EXISTS {table} (
    version INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    applied_at TIMESTAMPTZ NOT NULL DEFAULT NOW()
)""",
        applied=f"SELECT version FROM {table}",  # noqa: S608 (a checked name, no value)
        record=f"INSERT INTO {table} (version, name) VALUES ($1, $2)",  # noqa: S608
        adopt=f"""
INSERT INTO {table} (version, name, applied_at) VALUES ($1, $2, $3)
ON CONFLICT (version) DO NOTHING""",  # noqa: S608
    )


# The stored functions (`functions/__init__.py`): each one's recorded content hash.
FUNCTION_DIGESTS = """
SELECT p.proname AS name, obj_description(p.oid, 'pg_proc') AS digest FROM pg_proc p
WHERE p.pronamespace = current_schema()::regnamespace AND p.proname = ANY($1::text[])"""


def record_function(name: str, digest: str) -> str:
    """`COMMENT ON FUNCTION` recording `digest` (a name and a hash checked by the caller:
    neither can be a parameter)."""
    return f"COMMENT ON FUNCTION {name} IS '{digest}'"


def list_query(
    config: RunnableConfig | None,
    filter: dict[str, Any] | None,
    before: RunnableConfig | None,
    cursor: tuple[str, uuid.UUID, str] | None,
    page: int,
    session_id_for: Callable[[str], uuid.UUID],
    dumps_jsonb: Callable[[Any], str],
) -> tuple[str, list[Any]]:
    """One page of `alist`: newest first, resuming strictly after `cursor`."""
    where: list[str] = []
    args: list[Any] = []

    def param(value: Any) -> str:
        args.append(value)
        return f"${len(args)}"

    if config is not None:
        conf = config["configurable"]
        where.append(f"c.session_id = {param(session_id_for(conf['thread_id']))}")
        if conf.get("checkpoint_ns") is not None:
            where.append(f"c.checkpoint_ns = {param(conf['checkpoint_ns'])}")
        if conf.get("checkpoint_id"):
            where.append(f"c.checkpoint_id = {param(conf['checkpoint_id'])}")
    if filter:
        where.append(f"c.metadata @> {param(dumps_jsonb(filter))}::jsonb")
    if before is not None and before["configurable"].get("checkpoint_id"):
        where.append(f"c.checkpoint_id < {param(before['configurable']['checkpoint_id'])}")
    if cursor is not None:
        a, b, c = (param(v) for v in cursor)
        where.append(f"(c.checkpoint_id, c.session_id, c.checkpoint_ns) < ({a}, {b}, {c})")
    clause = ("WHERE " + " AND ".join(where)) if where else ""
    return SELECT_TUPLES_PAGE.format(where=clause, limit=param(page)), args
