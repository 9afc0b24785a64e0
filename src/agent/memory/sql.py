"""Every SQL statement of the checkpointer, in one place. All are parameterized.

The stored functions (`functions/`) are called in PostgreSQL's named notation: a
`FunctionCall` builds the statement from the function's parameters, written here once
beside it, and takes the arguments by the same names (a unit test checks them against the
function's definition).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from langchain_core.runnables import RunnableConfig

from src.agent.memory.jsonb import dumps_jsonb
from src.agent.memory.threads import session_id_for


class FunctionCall:
    """A call of a stored function in PostgreSQL's named notation (`p_<name> => $n`), built
    here from the function's parameters, with the arguments it takes by name."""

    def __init__(self, function: str, returns: str, params: str) -> None:
        """`params`: the parameters as in the function's signature without their `p_`
        (`session_id uuid, lock boolean`), in call order; `returns`: its output columns."""
        self.function = function
        self.params = dict(p.split() for p in " ".join(params.split()).split(", "))
        named = ", ".join(
            f"p_{name} => ${i}::{kind}" for i, (name, kind) in enumerate(self.params.items(), 1)
        )
        # Names and types are this module's constants; every value is a parameter.
        self.text = f"SELECT {returns} FROM {function}({named})"  # noqa: S608

    def args(self, **values: Any) -> list[Any]:
        """The statement's arguments in order; `TypeError` for a name missing or unknown."""
        if values.keys() != self.params.keys():
            missing = sorted(self.params.keys() - values.keys())
            unknown = sorted(values.keys() - self.params.keys())
            raise TypeError(f"{self.function}: missing {missing}, unknown {unknown}")
        return [values[name] for name in self.params]


# The session's messages (`$1`) from seq `{start}` on (transcript or other branches), as
# JSONB, in a scope where `cv` is its conversation row and `h` its head (NULL: nothing
# there). Nothing when no seq from there on was handed out (`next_seq`: one lookup, the
# usual case of a copy that is current); when the transcript shows seqs 0, 1, ... in order
# and no other branch holds a seq from there on (a linear conversation), the transcript's
# slice from that position, cut in C; `vera_messages_from` (which expands the whole array
# and joins it to the seqs) answers any other case.
_TAIL_FROM = """CASE
    WHEN h.next_seq <= {start} THEN NULL
    WHEN h.seqs = ARRAY(SELECT generate_series(0, cardinality(h.seqs) - 1))
        AND NOT EXISTS (SELECT FROM conversation_messages m
            WHERE m.session_id = $1 AND m.seq >= {start})
    THEN (CASE WHEN cardinality(h.seqs) > {start} THEN
        jsonb_path_query_array(cv.messages, format('$[%s to last]', {start})::jsonpath) END)
    ELSE vera_messages_from(p_session_id => $1, p_from => {start}) END"""
_CONVERSATION_AND_HEAD = """FROM conversations cv
LEFT JOIN transcript_heads h ON h.session_id = cv.session_id
WHERE cv.session_id = $1"""

# The session's messages from seq $2 on, with the conversation row's identity.
MESSAGES_FROM = (
    "SELECT cv.id AS conversation_id, ("
    + _TAIL_FROM.format(start="$2")
    + ")::text AS tail\n"
    + _CONVERSATION_AND_HEAD
)

# All the session's messages (`vera_messages_from($1, 0)` without its server-side walk):
# the transcript as stored, the seqs it shows, and the other branches' messages, merged
# by seq in Python. One statement: one snapshot.
MESSAGES_ALL = """
SELECT c.id AS conversation_id, c.messages::text AS shown, h.seqs,
    (SELECT array_agg(m.seq ORDER BY m.seq) FROM conversation_messages m
        WHERE m.session_id = $1) AS other_seqs,
    (SELECT jsonb_agg(m.element ORDER BY m.seq) FROM conversation_messages m
        WHERE m.session_id = $1)::text AS others
FROM conversations c LEFT JOIN transcript_heads h ON h.session_id = c.session_id
WHERE c.session_id = $1"""

# `aput` in one round trip (`functions/vera_put_checkpoint.sql`): the checkpoint's rows,
# its transcript's plan (`TranscriptPlan`: seqs, new_messages, next_seq, conversation_id)
# and what the write is checked against (the lease, the run's own last checkpoint).
PUT_CHECKPOINT = FunctionCall(
    "vera_put_checkpoint",
    returns="conversation_id, stored",
    params="""session_id uuid, checkpoint_ns text, checkpoint_id text,
        parent_checkpoint_id text, thread_id text, checkpoint jsonb, metadata jsonb,
        channels text[], versions text[], types text[], blobs bytea[],
        transcript_channel text, seqs integer[], new_messages jsonb, next_seq integer,
        conversation_id uuid, lease uuid, run_parent text, run_goes_on boolean""",
)

# A session's conversation row, created in a transaction of its own before this saver's
# first write of the session (`SessionWriters.create_row`): LangGraph stores a turn's first
# checkpoint and pending writes concurrently, and each would otherwise wait for the end of
# the other's whole write, which created the row (issue 28). Created only for a writer the
# write functions' fencing check lets write (this is that check, without the error: the
# write raises it), so a fenced writer brings back no deleted session; the id when created
# here.
CREATE_CONVERSATION = """
INSERT INTO conversations (session_id)
SELECT $1 WHERE CASE WHEN $2::uuid IS NULL
    THEN NOT EXISTS (SELECT FROM turn_leases l
        WHERE l.session_id = $1 AND l.expires_at > clock_timestamp())
    ELSE EXISTS (SELECT FROM turn_leases l WHERE l.session_id = $1 AND l.run_id = $2) END
ON CONFLICT (session_id) DO NOTHING
RETURNING id"""

# The session's conversation row, created if missing, locked until the transaction ends.
LOCK_CONVERSATION = FunctionCall(
    "vera_ensure_conversation",
    returns="conversation_id",
    params="session_id uuid, lock boolean",
)

# `aput_writes` in one round trip (`functions/vera_put_writes.sql`): a task's pending
# writes; returns the conversation's id and whether this statement created its row.
PUT_WRITES = FunctionCall(
    "vera_put_writes",
    returns="conversation_id, created",
    params="""session_id uuid, checkpoint_ns text, checkpoint_id text, task_id text,
        task_path text, idxs integer[], channels text[], types text[], blobs bytea[],
        replace boolean, lease uuid, run_stops boolean""",
)

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


def _tail_column(start: str) -> str:
    """The column `tail`: the session's messages from seq `start` on, as `MESSAGES_FROM`."""
    tail = _TAIL_FROM.format(start=start)
    return f", (SELECT ({tail})::text\n{_CONVERSATION_AND_HEAD}) AS tail\n"


# The latest checkpoint with the messages of its session from seq $3 on: a worker whose
# cached copy holds seqs [0, $3) reads what it missed (another process's turns) with the
# checkpoint, one statement and one snapshot (nothing more when it missed none).
SELECT_LATEST_TUPLE_WITH_TAIL = (
    _TUPLE_COLUMNS  # noqa: S608 (constant SQL joined to constant SQL)
    + _tail_column("$3")
    + """FROM (
    SELECT * FROM checkpoints WHERE session_id = $1 AND checkpoint_ns = $2
    ORDER BY checkpoint_id DESC LIMIT 1
) AS c"""
)

# The latest checkpoint with the whole message log of its session (the columns of
# `MESSAGES_ALL`), for a saver that caches nothing of the session yet: a cold read in one
# round trip, checkpoint and log from one snapshot.
SELECT_LATEST_TUPLE_WITH_LOG = (
    _TUPLE_COLUMNS  # noqa: S608 (constant SQL joined to constant SQL)
    + """, cv.messages::text AS shown, h.seqs,
    (SELECT array_agg(m.seq ORDER BY m.seq) FROM conversation_messages m
        WHERE m.session_id = $1) AS other_seqs,
    (SELECT jsonb_agg(m.element ORDER BY m.seq) FROM conversation_messages m
        WHERE m.session_id = $1)::text AS others
FROM (
    SELECT * FROM checkpoints WHERE session_id = $1 AND checkpoint_ns = $2
    ORDER BY checkpoint_id DESC LIMIT 1
) AS c
LEFT JOIN conversations cv ON cv.session_id = c.session_id
LEFT JOIN transcript_heads h ON h.session_id = c.session_id"""
)

# The reads a pooled connection prepares when it opens (run once for a session that
# does not exist, with these arguments after the session id), so that a new process's
# first read is one round trip, and so are its reads once it caches the session.
WARM_READS: tuple[tuple[str, tuple[Any, ...]], ...] = (
    (SELECT_LATEST_TUPLE, ("",)),
    (SELECT_LATEST_TUPLE_WITH_LOG, ("",)),
    (SELECT_LATEST_TUPLE_WITH_TAIL, ("", 0)),
)

_BY_ID = """FROM (
    SELECT * FROM checkpoints
    WHERE session_id = $1 AND checkpoint_ns = $2 AND checkpoint_id = $3
    LIMIT 1
) AS c"""
SELECT_TUPLE_BY_ID = _TUPLE_COLUMNS + _BY_ID
# The same with the messages from seq $4 on (as `SELECT_LATEST_TUPLE_WITH_TAIL`).
SELECT_TUPLE_BY_ID_WITH_TAIL = _TUPLE_COLUMNS + _tail_column("$4") + _BY_ID

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
    "checkpoint_retention",
)
_TABLE_BYTES = """(SELECT COALESCE(sum(pg_column_size(t.*)), 0) FROM {table} AS t
    WHERE t.session_id = ANY($1::uuid[]))"""
SESSIONS_BYTES = "SELECT " + " + ".join(_TABLE_BYTES.format(table=t) for t in SESSION_TABLES)

# The tips of a session's branches: its root checkpoints that no root checkpoint
# continues, newest first, each with the seqs of its transcript (channel $2; NULL when the
# channel holds something other than messages) and whether the transcript shows it. NOT IN
# is one hashed pass over the session's parents whatever the table's statistics (NOT
# EXISTS was planned as a nested loop before the table was analyzed: 237 ms against 10 ms
# at 900 checkpoints).
BRANCH_TIPS = """
SELECT c.checkpoint_id, c.created_at,
    vera_checkpoint_seqs(
        p_session_id => c.session_id, p_checkpoint => c.checkpoint, p_transcript_channel => $2
    ) AS seqs,
    c.checkpoint_id IS NOT DISTINCT FROM h.checkpoint_id AS shown
FROM checkpoints c LEFT JOIN transcript_heads h ON h.session_id = c.session_id
WHERE c.session_id = $1 AND c.checkpoint_ns = ''
    AND c.checkpoint_id NOT IN (SELECT k.parent_checkpoint_id FROM checkpoints k
        WHERE k.session_id = $1 AND k.checkpoint_ns = '' AND k.parent_checkpoint_id IS NOT NULL)
ORDER BY c.checkpoint_id DESC"""

# The checkpoints of the branch shown, from the head towards the root, each with the seqs
# of its transcript (channel $2), down to the first one holding fewer than $3 messages (the
# walk stops there: a fork after the first $3 messages starts above it).
SHOWN_CHAIN = """
WITH RECURSIVE chain AS (
    SELECT c.checkpoint_id, c.parent_checkpoint_id, 0 AS depth,
        vera_checkpoint_seqs(
            p_session_id => $1, p_checkpoint => c.checkpoint, p_transcript_channel => $2
        ) AS seqs
    FROM transcript_heads h JOIN checkpoints c ON c.session_id = h.session_id
        AND c.checkpoint_ns = '' AND c.checkpoint_id = h.checkpoint_id
    WHERE h.session_id = $1
    UNION ALL
    SELECT p.checkpoint_id, p.parent_checkpoint_id, chain.depth + 1,
        vera_checkpoint_seqs(
            p_session_id => $1, p_checkpoint => p.checkpoint, p_transcript_channel => $2
        )
    FROM chain JOIN checkpoints p ON p.session_id = $1 AND p.checkpoint_ns = ''
        AND p.checkpoint_id = chain.parent_checkpoint_id
    WHERE COALESCE(cardinality(chain.seqs), 0) >= $3
)
SELECT checkpoint_id, seqs FROM chain ORDER BY depth"""

# The transcript's head: its checkpoint and the seqs it shows.
HEAD_SEQS = "SELECT checkpoint_id, seqs FROM transcript_heads WHERE session_id = $1"

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
INSERT INTO transcript_heads (session_id, checkpoint_id, seqs, waiting, version, next_seq)
SELECT $2, checkpoint_id, seqs, waiting, version, next_seq
FROM transcript_heads WHERE session_id = $1
ON CONFLICT (session_id) DO UPDATE SET checkpoint_id = EXCLUDED.checkpoint_id,
    seqs = EXCLUDED.seqs, waiting = EXCLUDED.waiting, version = EXCLUDED.version,
    next_seq = EXCLUDED.next_seq"""

# After checkpoints were deleted: each session's transcript shows its latest checkpoint.
REFRESH_TRANSCRIPTS = """
SELECT vera_refresh_transcript(p_session_id => s, p_transcript_channel => $2)
FROM unnest($1::uuid[]) AS s ORDER BY s"""

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

# The transcript of the latest checkpoint (`functions/vera_transcript_seqs.sql`): what
# `conversations.messages` shows, then the messages of a run still going (or cut short)
# that wait to be shown at its end.
SESSION_TRANSCRIPT = """
SELECT c.messages::text AS shown,
    (SELECT jsonb_agg(m.element ORDER BY w.ord)
        FROM unnest(h.waiting) WITH ORDINALITY AS w(seq, ord)
        JOIN conversation_messages m ON m.session_id = c.session_id AND m.seq = w.seq
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


@dataclass(frozen=True)
class ListPage:
    """One page of `alist`: the checkpoints of a session (`session_id`, None: every
    session), namespace and id when given, whose metadata contains `metadata` (JSON text),
    older than `before`, strictly after `cursor` (the last row of the page before), at most
    `size` of them."""

    session_id: uuid.UUID | None
    checkpoint_ns: str | None
    checkpoint_id: str | None
    metadata: str | None
    before: str | None
    cursor: tuple[str, uuid.UUID, str] | None
    size: int

    @classmethod
    def of(
        cls,
        config: RunnableConfig | None,
        filter: dict[str, Any] | None,
        before: RunnableConfig | None,
        size: int,
    ) -> ListPage:
        """The first page of `alist(config, filter=..., before=...)`."""
        conf = config["configurable"] if config is not None else {}
        return cls(
            session_id=session_id_for(conf["thread_id"]) if config is not None else None,
            checkpoint_ns=conf.get("checkpoint_ns"),
            checkpoint_id=conf.get("checkpoint_id"),
            metadata=dumps_jsonb(filter) if filter else None,
            before=before["configurable"].get("checkpoint_id") if before is not None else None,
            cursor=None,
            size=size,
        )


def list_query(page: ListPage) -> tuple[str, list[Any]]:
    """The statement of one page of `alist`, newest first, and its arguments."""
    where: list[str] = []
    args: list[Any] = []

    def param(value: Any) -> str:
        args.append(value)
        return f"${len(args)}"

    if page.session_id is not None:
        where.append(f"c.session_id = {param(page.session_id)}")
    if page.checkpoint_ns is not None:
        where.append(f"c.checkpoint_ns = {param(page.checkpoint_ns)}")
    if page.checkpoint_id:
        where.append(f"c.checkpoint_id = {param(page.checkpoint_id)}")
    if page.metadata is not None:
        where.append(f"c.metadata @> {param(page.metadata)}::jsonb")
    if page.before:
        where.append(f"c.checkpoint_id < {param(page.before)}")
    if page.cursor is not None:
        a, b, c = (param(v) for v in page.cursor)
        where.append(f"(c.checkpoint_id, c.session_id, c.checkpoint_ns) < ({a}, {b}, {c})")
    clause = ("WHERE " + " AND ".join(where)) if where else ""
    return SELECT_TUPLES_PAGE.format(where=clause, limit=param(page.size)), args
