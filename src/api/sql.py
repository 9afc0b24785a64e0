"""The SQL of the API's own tables (`session_owners`, `turn_events`); the checkpointer's
(its lease table `turn_leases` too) is in `src/agent/memory/sql.py`."""

# A new session goes to the caller; one that exists without an owner row (written by
# Studio, or before ownership was recorded) to the default principal. Then the owner. When
# the insert meets a row another transaction committed after this statement began, the
# SELECT (same snapshot) cannot see it and no row comes back: read it again then
# (`SESSION_OWNER`, a new snapshot). Untitled ('') until a user message is stored.
CLAIM_SESSION = """
WITH claimed AS (
    INSERT INTO session_owners (session_id, principal, user_id)
    SELECT $1,
           CASE WHEN c.session_id IS NULL THEN $2 ELSE $4 END,
           CASE WHEN c.session_id IS NULL THEN $3 ELSE '' END
    FROM (SELECT 1) AS one
    LEFT JOIN conversations AS c ON c.session_id = $1
    ON CONFLICT (session_id) DO NOTHING
    RETURNING principal, user_id
)
SELECT principal, user_id FROM claimed
UNION ALL
SELECT principal, user_id FROM session_owners WHERE session_id = $1
LIMIT 1"""

SESSION_OWNER = "SELECT principal, user_id FROM session_owners WHERE session_id = $1"

# Sessions written without the API (by `langgraph dev` for Studio, or the library directly)
# have no owner row: before the default principal ($1) lists its sessions, each gets one,
# with its conversation's times, as CLAIM_SESSION would give it (untitled: the list titles
# it by its first user message); the memory library never writes an app table, so this is
# where such sessions join. A worker looks at every conversation once (its first listing),
# then only at those created since its last look ($2, less a margin for a transaction
# that began before that look and committed after it; app migration 4's index); the
# statement's time is the next look's start.
_ADOPT = """
WITH adopted AS (
    INSERT INTO session_owners (session_id, principal, created_at, updated_at)
    SELECT c.session_id, $1, COALESCE(c.created_at, NOW()), COALESCE(c.updated_at, NOW())
    FROM conversations AS c
    WHERE {since} NOT EXISTS (SELECT FROM session_owners AS o WHERE o.session_id = c.session_id)
    ON CONFLICT (session_id) DO NOTHING
)
SELECT LOCALTIMESTAMP"""
ADOPT_UNOWNED_SESSIONS = _ADOPT.format(since="$2::timestamp IS NULL AND")
ADOPT_UNOWNED_SESSIONS_SINCE = _ADOPT.format(
    since="c.created_at >= $2::timestamp - make_interval(mins => 10) AND"
)

# The same for one session ($2), when it has a conversation and no owner row.
ADOPT_UNOWNED_SESSION = """
INSERT INTO session_owners (session_id, principal, created_at, updated_at)
SELECT c.session_id, $1, COALESCE(c.created_at, NOW()), COALESCE(c.updated_at, NOW())
FROM conversations AS c WHERE c.session_id = $2
ON CONFLICT (session_id) DO NOTHING"""

# Who may read a session: its owner row, else (no row: written by Studio, or before
# ownership was recorded) whether anything of it is stored (else: an unknown id).
SESSION_ACCESS = """
SELECT o.principal, o.user_id,
       EXISTS (SELECT FROM conversations WHERE session_id = $1)
           OR EXISTS (SELECT FROM turn_events WHERE session_id = $1) AS stored
FROM (SELECT 1) AS one
LEFT JOIN session_owners AS o ON o.session_id = $1"""

# The content (JSON) of a session's first stored user message: in its transcript, else
# the first message of a first run still going (`transcript_heads.waiting`) when it is the
# user's; NULL when none is stored. `{session}` is the column or parameter naming it.
_FIRST_USER_CONTENT = """COALESCE(
    (SELECT jsonb_path_query_first(c.messages, '$[*] ? (@.role == "user").content')
     FROM conversations AS c WHERE c.session_id = {session}),
    (SELECT m.element->'content'
     FROM transcript_heads AS h
     JOIN conversation_messages AS m ON m.session_id = h.session_id AND m.seq = h.waiting[1]
     WHERE h.session_id = {session} AND m.element->>'role' = 'user')
)::text"""

# A turn ended: the session goes to the top of its owner's list; an untitled one also
# returns its first stored user message (`SET_TITLE` then titles it).
_TOUCH = """
UPDATE session_owners SET updated_at = NOW() WHERE session_id = $1
RETURNING CASE WHEN title = '' THEN {first} END AS first_message"""
TOUCH_SESSION = _TOUCH.format(first=_FIRST_USER_CONTENT.format(session="$1"))

SET_TITLE = "UPDATE session_owners SET title = $2 WHERE session_id = $1 AND title = ''"

# Pages of one caller's sessions, newest first; the message count is the length of the
# latest checkpoint's transcript (the checkpointer's `vera_transcript_seqs` of the
# session's `transcript_heads` row: the seqs shown and those waiting for the end of a run),
# looked up per listed row. A session with no stored message (its first message was
# refused) is not listed; an untitled one (its first turn still runs) comes with its first
# stored user message. (The outer join, kept by the COALESCE, lets the owner index give the
# order.)
_LIST = """
SELECT o.session_id, o.title, o.created_at, o.updated_at,
       cardinality(vera_transcript_seqs(h)) AS message_count,
       CASE WHEN o.title = '' THEN {first} END AS first_message
FROM session_owners AS o
LEFT JOIN transcript_heads AS h ON h.session_id = o.session_id
WHERE o.principal = $1 AND o.user_id = $2 {after}
    AND COALESCE(cardinality(vera_transcript_seqs(h)), 0) > 0
ORDER BY o.updated_at DESC, o.session_id DESC
LIMIT $3"""

_FIRST_LISTED = _FIRST_USER_CONTENT.format(session="o.session_id")
LIST_SESSIONS_FIRST = _LIST.format(after="", first=_FIRST_LISTED)
LIST_SESSIONS_AFTER = _LIST.format(
    after="AND (o.updated_at, o.session_id) < ($4, $5)", first=_FIRST_LISTED
)

# -- turn_events (`turn_events.py`) --

INSERT_EVENTS = """
WITH saved AS (
    INSERT INTO turn_events (session_id, turn_id, seq, event, data)
    SELECT $1, $2, u.seq, u.event, u.data::jsonb
    FROM unnest($3::int[], $4::text[], $5::text[]) AS u(seq, event, data)
    ON CONFLICT DO NOTHING
)
SELECT pg_notify($6, $1::text || ' ' || $2)"""

LAST_SEQ = "SELECT COALESCE(MAX(seq), 0) FROM turn_events WHERE session_id = $1 AND turn_id = $2"

EVENTS_AFTER = """
SELECT seq, event, data::text AS data FROM turn_events
WHERE session_id = $1 AND turn_id = $2 AND seq > $3 ORDER BY seq"""

DELETE_EXPIRED_EVENTS = (
    "DELETE FROM turn_events WHERE created_at < NOW() - make_interval(secs => $1)"
)

# Sent through the pool at start-up, to check that the LISTEN connection receives NOTIFYs.
PROBE_NOTIFY = "SELECT pg_notify($1, $2)"

# -- turn_cancels (`turn_cancel.py`; top-level `migrations/0005_turn_cancels.sql`) --

# A request for run $1 (session $2, turn $3), announced on channel $4; requests older than
# an hour (their runs ended before they were seen) go on the way.
REQUEST_CANCEL = """
WITH pruned AS (
    DELETE FROM turn_cancels WHERE requested_at < NOW() - interval '1 hour'
), saved AS (
    INSERT INTO turn_cancels (run_id, session_id, turn_id) VALUES ($1, $2, $3)
    ON CONFLICT DO NOTHING
)
SELECT pg_notify($4, $1::text)"""

# Which of the runs $1 someone asked to stop.
CANCELS_REQUESTED = "SELECT run_id FROM turn_cancels WHERE run_id = ANY($1::uuid[])"

CANCEL_DONE = "DELETE FROM turn_cancels WHERE run_id = $1"

# -- the API_WORKERS start-up check (`workers.py`) --

# The pid of the server process that answers (a pooler in between reports another one).
BACKEND_PID = "SELECT pg_backend_pid()"
MAX_CONNECTIONS = "SHOW max_connections"
SUPERUSER_RESERVED_CONNECTIONS = "SHOW superuser_reserved_connections"
RESERVED_CONNECTIONS = "SHOW reserved_connections"  # PostgreSQL 16+

# -- a session's life: its TTL, the sweep, erasing and forgetting (`session_ttl.py`,
# `session_erase.py`); the table: top-level `migrations/0003_session_ttl.sql` --

# A session's own TTL ($2 minutes; NULL: the server's default). A session written without
# the API (no owner row) gets one, the default principal's, as CLAIM_SESSION would give it.
SET_SESSION_TTL = """
WITH owned AS (
    UPDATE session_owners SET ttl_minutes = $2 WHERE session_id = $1 RETURNING session_id
), adopted AS (
    INSERT INTO session_owners (session_id, principal, ttl_minutes, created_at, updated_at)
    SELECT c.session_id, $3, $2, COALESCE(c.created_at, NOW()), COALESCE(c.updated_at, NOW())
    FROM conversations AS c
    WHERE c.session_id = $1 AND NOT EXISTS (SELECT FROM owned)
    ON CONFLICT (session_id) DO UPDATE SET ttl_minutes = EXCLUDED.ttl_minutes
    RETURNING session_id
)
SELECT session_id FROM owned UNION ALL SELECT session_id FROM adopted"""

# What the export and the TTL answer show of a session: its owner row (title, times, own
# TTL) and its conversation's times; idle since the later of its last turn's end and its
# transcript's last change. No row: nothing of it is stored.
SESSION_RECORD = """
SELECT o.title, COALESCE(o.created_at, c.created_at::timestamptz) AS created_at,
       GREATEST(o.updated_at, c.updated_at::timestamptz) AS idle_since, o.ttl_minutes,
       c.session_id IS NOT NULL AS stored
FROM (SELECT 1) AS one
LEFT JOIN session_owners AS o ON o.session_id = $1
LEFT JOIN conversations AS c ON c.session_id = $1
WHERE o.session_id IS NOT NULL OR c.session_id IS NOT NULL"""

# One batch of a TTL sweep ($1 the default TTL in minutes or NULL, $2 the sweep's run id,
# $3 the batch size, $4 its lease in seconds): sessions idle past their TTL, idle longest
# first, with no live lease, are claimed by taking their lease (as a turn does; one held
# by a running turn is never taken), so no turn starts on them while they are deleted and
# no other sweeper picks them. SKIP LOCKED: two sweepers pass each other's candidates by.
# Owner rows on the default TTL and those with their own are walked from two indexes (the
# latter down to the shortest TTL any session has); sessions written without the API (no
# owner row) have the default TTL, found by one scan of `conversations` probing each old
# one's owner row by key (a subquery, not NOT EXISTS: on stale statistics the anti-join
# that becomes was planned as a nested loop over every owner row, 3.7 s for 700
# candidates among 20,000 sessions).
_IDLE_OWNERS = """
    SELECT o.session_id FROM session_owners AS o
    LEFT JOIN conversations AS c ON c.session_id = o.session_id
    WHERE {which}
        AND o.updated_at < NOW() - make_interval(secs => 60 * {ttl})
        AND (c.updated_at IS NULL
            OR c.updated_at < LOCALTIMESTAMP - make_interval(secs => 60 * {ttl}))
        AND NOT EXISTS (SELECT FROM turn_leases AS l
            WHERE l.session_id = o.session_id AND l.expires_at > clock_timestamp())
    ORDER BY o.updated_at
    LIMIT $3
    FOR UPDATE OF o SKIP LOCKED"""
_DEFAULTED = _IDLE_OWNERS.format(which="o.ttl_minutes IS NULL", ttl="$1::float8")
_OWN_TTL = _IDLE_OWNERS.format(
    which="""o.ttl_minutes IS NOT NULL AND o.updated_at < NOW() - make_interval(secs => 60
        * (SELECT min(ttl_minutes) FROM session_owners WHERE ttl_minutes IS NOT NULL))""",
    ttl="o.ttl_minutes",
)
CLAIM_EXPIRED_SESSIONS = f"""
WITH defaulted AS ({_DEFAULTED}
), own_ttl AS ({_OWN_TTL}
), unowned AS (
    SELECT c.session_id FROM conversations AS c
    WHERE $1::float8 IS NOT NULL
        AND c.updated_at < LOCALTIMESTAMP - make_interval(secs => 60 * $1)
        AND (SELECT true FROM session_owners AS o WHERE o.session_id = c.session_id) IS NULL
        AND NOT EXISTS (SELECT FROM turn_leases AS l
            WHERE l.session_id = c.session_id AND l.expires_at > clock_timestamp())
    LIMIT $3
    FOR NO KEY UPDATE OF c SKIP LOCKED
), leased AS (
    INSERT INTO turn_leases (session_id, run_id, expires_at)
    SELECT e.session_id, $2, clock_timestamp() + make_interval(secs => $4)
    FROM (SELECT session_id FROM defaulted UNION SELECT session_id FROM own_ttl
          UNION SELECT session_id FROM unowned LIMIT $3) AS e
    ON CONFLICT (session_id) DO UPDATE
    SET run_id = EXCLUDED.run_id, expires_at = EXCLUDED.expires_at
    WHERE turn_leases.expires_at < clock_timestamp()
    RETURNING session_id
)
SELECT session_id FROM leased"""  # noqa: S608 (constant SQL joined to constant SQL)

# Every session of principal $1 (of its end user $2 only, unless $2 is NULL), and with $3
# the sessions written without the API (the default principal's); each is claimed by
# taking its lease ($4 run id, $5 seconds), and `leased` is false for one whose lease a
# running turn holds.
CLAIM_OWNER_SESSIONS = """
WITH theirs AS (
    SELECT o.session_id FROM session_owners AS o
    WHERE o.principal = $1 AND ($2::text IS NULL OR o.user_id = $2)
    UNION
    SELECT c.session_id FROM conversations AS c
    WHERE $3 AND NOT EXISTS (SELECT FROM session_owners AS o WHERE o.session_id = c.session_id)
), leased AS (
    INSERT INTO turn_leases (session_id, run_id, expires_at)
    SELECT session_id, $4, clock_timestamp() + make_interval(secs => $5) FROM theirs
    ON CONFLICT (session_id) DO UPDATE
    SET run_id = EXCLUDED.run_id, expires_at = EXCLUDED.expires_at
    WHERE turn_leases.expires_at < clock_timestamp()
    RETURNING session_id
)
SELECT t.session_id, l.session_id IS NOT NULL AS leased
FROM theirs AS t LEFT JOIN leased AS l ON l.session_id = t.session_id
ORDER BY t.session_id"""

# The claims of run $1, pushed out again ($2 seconds) or dropped.
RENEW_RUN_LEASES = """
UPDATE turn_leases SET expires_at = clock_timestamp() + make_interval(secs => $2)
WHERE run_id = $1"""

RELEASE_RUN_LEASES = "DELETE FROM turn_leases WHERE run_id = $1"

# The API's rows of sessions $1 whose conversations the checkpointer just deleted: their
# turn events, runs, owner rows and the leases run $2 claimed them with; which sessions had any
# (events or owner) and the bytes those rows took as stored, measured as the checkpointer
# measures its own (on the statement's snapshot, before the deletes; the leases, the
# deletion's own claims, are not counted).
ERASE_SESSIONS = """
WITH sizes AS (
    SELECT (SELECT COALESCE(sum(pg_column_size(t.*)), 0) FROM turn_events AS t
            WHERE t.session_id = ANY($1::uuid[]))
        + (SELECT COALESCE(sum(pg_column_size(t.*)), 0) FROM session_owners AS t
            WHERE t.session_id = ANY($1::uuid[]))
        + (SELECT COALESCE(sum(pg_column_size(t.*)), 0) FROM thread_runs AS t
            WHERE t.session_id = ANY($1::uuid[])) AS bytes
), events AS (
    DELETE FROM turn_events WHERE session_id = ANY($1::uuid[]) RETURNING session_id
), runs_deleted AS (
    DELETE FROM thread_runs WHERE session_id = ANY($1::uuid[]) RETURNING session_id
), owners AS (
    DELETE FROM session_owners WHERE session_id = ANY($1::uuid[]) RETURNING session_id
), leases AS (
    DELETE FROM turn_leases WHERE session_id = ANY($1::uuid[]) AND run_id = $2
), cancels AS (
    DELETE FROM turn_cancels WHERE session_id = ANY($1::uuid[])
)
SELECT ARRAY(SELECT session_id FROM events UNION SELECT session_id FROM runs_deleted
             UNION SELECT session_id FROM owners) AS sessions,
    (SELECT bytes FROM sizes) AS bytes"""
