"""The SQL of the Agent Server door's threads: their rows are the sessions' owner rows
(`session_owners`, with `metadata` from app migration 4) and conversations."""

# What a thread answer shows of a session: its metadata, its times (`updated_at` the later
# of its last turn's end and its transcript's last change; `state_updated_at` the latter),
# whether a turn holds its lease now, and how its last Agent Server run ended (and its
# config). The metadata shown holds, once the thread has a checkpoint, its graph and
# assistant (`{implied}`), as `langgraph dev` records them at a thread's first run.
_THREAD_COLUMNS = """
    o.session_id, {shown}::text AS metadata, o.created_at,
    GREATEST(o.updated_at, c.updated_at::timestamptz) AS updated_at,
    COALESCE(c.updated_at::timestamptz, o.created_at) AS state_updated_at,
    c.session_id IS NOT NULL AS stored,
    (SELECT r.status FROM thread_runs AS r WHERE r.session_id = o.session_id
     ORDER BY r.created_at DESC LIMIT 1) AS last_run_status,
    (SELECT (r.kwargs -> 'config')::text FROM thread_runs AS r WHERE r.session_id = o.session_id
     ORDER BY r.created_at DESC LIMIT 1) AS last_run_config,
    EXISTS (SELECT FROM turn_leases AS l
            WHERE l.session_id = o.session_id AND l.expires_at > clock_timestamp()) AS busy"""

_SHOWN = "(o.metadata || CASE WHEN c.session_id IS NULL THEN '{{}}' ELSE {implied}::jsonb END)"

# Thread $1, with $2 the metadata implied by a checkpoint.
SELECT_THREAD = f"""
SELECT {_THREAD_COLUMNS.format(shown=_SHOWN.format(implied="$2"))}
FROM session_owners AS o
LEFT JOIN conversations AS c ON c.session_id = o.session_id
WHERE o.session_id = $1"""  # noqa: S608 (constant SQL)

# A page of principal $2's (end user $3's) threads ($1: as in SELECT_THREAD): those whose
# shown metadata contains $4 (none: NULL) and, with $5, whose ids are in it; $6 threads
# after the first $7.
_SEARCH = """
SELECT {columns}
FROM session_owners AS o
LEFT JOIN conversations AS c ON c.session_id = o.session_id
WHERE o.principal = $2 AND o.user_id = $3
    AND ($4::jsonb IS NULL OR {shown} @> $4::jsonb)
    AND ($5::uuid[] IS NULL OR o.session_id = ANY($5::uuid[]))
ORDER BY o.{key} {order}, o.session_id {order}
LIMIT $6 OFFSET $7"""

_SHOWN_SEARCHED = _SHOWN.format(implied="$1")
SEARCH_THREADS = {
    (key, order): _SEARCH.format(
        columns=_THREAD_COLUMNS.format(shown=_SHOWN_SEARCHED),
        shown=_SHOWN_SEARCHED,
        key=key,
        order=order.upper(),
    )
    for key in ("created_at", "updated_at")
    for order in ("asc", "desc")
}

# A new thread ($1) for principal $2 (end user $3), with metadata $4 and TTL $5 (minutes or
# NULL): only when nothing of that id is stored; no row back when something is.
CREATE_THREAD = """
INSERT INTO session_owners (session_id, principal, user_id, metadata, ttl_minutes)
SELECT $1, $2, $3, $4::jsonb, $5
WHERE NOT EXISTS (SELECT FROM conversations WHERE session_id = $1)
ON CONFLICT (session_id) DO NOTHING
RETURNING session_id"""

# Thread $1's metadata merged with $2 (top-level keys replaced); with $3 its TTL set to $4.
UPDATE_THREAD = """
UPDATE session_owners
SET metadata = metadata || $2::jsonb,
    ttl_minutes = CASE WHEN $3 THEN $4 ELSE ttl_minutes END
WHERE session_id = $1
RETURNING session_id"""

# The copy $2 of thread $1: the same owner, title, metadata and TTL (new times).
COPY_THREAD_OWNER = """
INSERT INTO session_owners (session_id, principal, user_id, title, metadata, ttl_minutes)
SELECT $2, principal, user_id, title, metadata, ttl_minutes
FROM session_owners WHERE session_id = $1
ON CONFLICT (session_id) DO NOTHING
RETURNING session_id"""

# An owner row whose thread has nothing else stored (a copy that failed), removed again.
DROP_BARE_OWNER = """
DELETE FROM session_owners AS o
WHERE o.session_id = $1 AND NOT EXISTS (SELECT FROM conversations WHERE session_id = $1)"""

# -- runs (`run_book.py`; top-level `migrations/0006_thread_runs.sql`) --

_RUN_COLUMNS = """run_id, session_id AS thread_id, assistant_id, status, metadata::text AS metadata,
    kwargs::text AS kwargs, multitask_strategy, created_at, updated_at, attempt,
    COALESCE(lease_id, run_id) AS lease_id"""

# Run $1 of thread $2 (assistant $3), pending, with metadata $4, kwargs $5 and strategy $6.
INSERT_RUN = f"""
INSERT INTO thread_runs (run_id, session_id, assistant_id, metadata, kwargs, multitask_strategy)
VALUES ($1, $2, $3, $4::jsonb, $5::jsonb, $6)
RETURNING {_RUN_COLUMNS}"""  # noqa: S608 (constant SQL)

SET_RUN_STATUS = "UPDATE thread_runs SET status = $2, updated_at = NOW() WHERE run_id = $1"

# Run $2 of thread $1 ended with status $3, as told by its attempt holding lease $4 (one
# that lost the run to another attempt changes nothing); the lease goes in the same statement.
END_RUN = """
WITH released AS (DELETE FROM turn_leases WHERE session_id = $1 AND run_id = $4)
UPDATE thread_runs SET status = $3, updated_at = NOW()
WHERE run_id = $2 AND COALESCE(lease_id, run_id) = $4"""

# Run $2 of thread $1.
SELECT_RUN = f"SELECT {_RUN_COLUMNS} FROM thread_runs WHERE session_id = $1 AND run_id = $2"  # noqa: S608

# Thread $1's runs (with status $2 only, unless NULL), newest first: $3 after the first $4.
LIST_RUNS = f"""
SELECT {_RUN_COLUMNS} FROM thread_runs
WHERE session_id = $1 AND ($2::text IS NULL OR status = $2)
ORDER BY created_at DESC, run_id DESC
LIMIT $3 OFFSET $4"""  # noqa: S608 (constant SQL)

# A run in its thread's queue: pending, waiting for the thread (every strategy but `reject`,
# whose run is stored pending only under the thread's lease, just before it runs).
_QUEUED = "{r}status = 'pending' AND {r}multitask_strategy <> 'reject'"
# A run that started (or is about to, under the lease) and has not ended.
_STARTED = "({r}status = 'running' OR ({r}status = 'pending' AND {r}multitask_strategy = 'reject'))"

# The oldest run of thread $1 waiting in its queue, none while a run of the thread started
# and has not ended (one whose worker died waits to be taken over first, `run_recovery`).
FIRST_QUEUED_RUN = f"""
SELECT run_id FROM thread_runs
WHERE session_id = $1 AND {_QUEUED.format(r="")}
    AND NOT EXISTS (SELECT FROM thread_runs WHERE session_id = $1 AND {_STARTED.format(r="")})
ORDER BY created_at, run_id LIMIT 1"""  # noqa: S608 (constant SQL)

# Queued run $1 leaves its queue with status $2 (`running`, `interrupted`, `timeout`),
# unless it already left it; the run id when it did.
DEQUEUE_RUN = f"""
UPDATE thread_runs SET status = $2, updated_at = NOW()
WHERE run_id = $1 AND {_QUEUED.format(r="")}
RETURNING run_id"""  # noqa: S608 (constant SQL)

# Run $1 is asked to roll back once stopped (`migrations/0007_run_rollback.sql`).
MARK_ROLLBACK = "UPDATE thread_runs SET rollback = TRUE WHERE run_id = $1"

# Whether run $1 was asked to roll back.
ROLLBACK_ASKED = "SELECT rollback FROM thread_runs WHERE run_id = $1"

# Run $2 of thread $1 rolled back: its row goes, and the lease it held in the same statement.
# ($3: the lease of the attempt that rolls it back.)
DROP_RUN = """
WITH released AS (DELETE FROM turn_leases WHERE session_id = $1 AND run_id = $3)
DELETE FROM thread_runs WHERE run_id = $2 AND COALESCE(lease_id, run_id) = $3"""

# Thread $1's runs that have not ended, oldest first (`multitask_strategy` interrupt, rollback).
ACTIVE_RUNS = """
SELECT run_id, status, multitask_strategy, COALESCE(lease_id, run_id) AS lease_id
FROM thread_runs WHERE session_id = $1 AND status IN ('pending', 'running')
ORDER BY created_at, run_id"""

# -- runs whose worker died, and queues it left (`run_recovery.py`) --

# No turn holds the thread of run `r` now (a lease that expired holds nothing).
_THREAD_FREE = """NOT EXISTS (SELECT FROM turn_leases AS l
    WHERE l.session_id = r.session_id AND l.expires_at > clock_timestamp())"""

# Runs that started and have not ended while nothing holds their thread: their worker died
# (or lost the lease); at most $1, oldest first.
ORPHANED_RUNS = f"""
SELECT r.run_id, r.session_id, r.attempt, COALESCE(r.lease_id, r.run_id) AS lease_id,
    r.kwargs::text AS kwargs
FROM thread_runs AS r
WHERE {_STARTED.format(r="r.")}
    AND {_THREAD_FREE}
ORDER BY r.created_at LIMIT $1"""  # noqa: S608 (constant SQL)

# Run $1's next attempt, under lease $3, taken from the attempt that held lease $2; its
# number, none when another worker took it over first (or it ended meanwhile).
RECLAIM_RUN = f"""
UPDATE thread_runs SET attempt = attempt + 1, lease_id = $3, updated_at = NOW()
WHERE run_id = $1 AND COALESCE(lease_id, run_id) = $2 AND {_STARTED.format(r="")}
RETURNING attempt"""  # noqa: S608 (constant SQL)

# The first queued run of each thread that nothing holds and no started run waits on
# (its accepting worker may be gone); at most $1.
QUEUE_HEADS = f"""
SELECT DISTINCT ON (r.session_id) r.run_id, r.session_id, r.created_at, r.kwargs::text AS kwargs
FROM thread_runs AS r
WHERE {_QUEUED.format(r="r.")}
    AND {_THREAD_FREE}
    AND NOT EXISTS (SELECT FROM thread_runs AS o
        WHERE o.session_id = r.session_id AND {_STARTED.format(r="o.")})
ORDER BY r.session_id, r.created_at, r.run_id LIMIT $1"""  # noqa: S608 (constant SQL)

# -- stopping runs in bulk (`run_cancel.py`) --

# The active runs ($3: their statuses) of principal $1's (end user $2's) threads.
PRINCIPALS_ACTIVE_RUNS = """
SELECT r.session_id AS thread_id, r.run_id, r.status, r.multitask_strategy,
    COALESCE(r.lease_id, r.run_id) AS lease_id
FROM thread_runs AS r
JOIN session_owners AS o ON o.session_id = r.session_id
WHERE o.principal = $1 AND o.user_id = $2 AND r.status = ANY($3::text[])
ORDER BY r.created_at, r.run_id"""

# The runs of thread $1 among ids $2 (any status).
THREADS_RUNS = """
SELECT session_id AS thread_id, run_id, status, multitask_strategy,
    COALESCE(lease_id, run_id) AS lease_id
FROM thread_runs
WHERE session_id = $1 AND run_id = ANY($2::uuid[])
ORDER BY created_at, run_id"""
