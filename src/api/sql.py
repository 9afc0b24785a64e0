"""The SQL of the API's own tables (`session_owners`, `turn_leases`, `turn_events`); the
checkpointer's is in `src/agent/memory/sql.py`."""

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

# Who may read a session: its owner row, else (no row: written by Studio, or before
# ownership was recorded) whether anything of it is stored (else: an unknown id).
SESSION_ACCESS = """
SELECT o.principal, o.user_id,
       EXISTS (SELECT FROM conversations WHERE session_id = $1)
           OR EXISTS (SELECT FROM turn_events WHERE session_id = $1) AS stored
FROM (SELECT 1) AS one
LEFT JOIN session_owners AS o ON o.session_id = $1"""

# The content (JSON) of a session's first stored user message: in its transcript, else
# the first message of a first run still going (`transcript_heads.pending`) when it is the
# user's; NULL when none is stored. `{session}` is the column or parameter naming it.
_FIRST_USER_CONTENT = """COALESCE(
    (SELECT jsonb_path_query_first(c.messages, '$[*] ? (@.role == "user").content')
     FROM conversations AS c WHERE c.session_id = {session}),
    (SELECT m.element->'content'
     FROM transcript_heads AS h
     JOIN conversation_messages AS m ON m.session_id = h.session_id AND m.seq = h.pending[1]
     WHERE h.session_id = {session} AND m.element->>'role' = 'user')
)::text"""

# A turn ended: the session goes to the top of its owner's list; an untitled one also
# returns its first stored user message (`SET_TITLE` then titles it).
_TOUCH = """
UPDATE session_owners SET updated_at = NOW() WHERE session_id = $1
RETURNING CASE WHEN title = '' THEN {first} END AS first_message"""
TOUCH_SESSION = _TOUCH.format(first=_FIRST_USER_CONTENT.format(session="$1"))

SET_TITLE = "UPDATE session_owners SET title = $2 WHERE session_id = $1 AND title = ''"

DELETE_OWNER = "DELETE FROM session_owners WHERE session_id = $1"

# Pages of one caller's sessions, newest first; the message count is the length of the
# latest checkpoint's transcript (`transcript_heads`: the seqs shown and those waiting for
# the end of a run), looked up per listed row. A session with no stored message (its first
# message was refused) is not listed; an untitled one (its first turn still runs) comes
# with its first stored user message. (The outer join, kept by the COALESCE, lets the
# owner index give the order.)
_LIST = """
SELECT o.session_id, o.title, o.created_at, o.updated_at,
       cardinality(h.seqs) + cardinality(h.pending) AS message_count,
       CASE WHEN o.title = '' THEN {first} END AS first_message
FROM session_owners AS o
LEFT JOIN transcript_heads AS h ON h.session_id = o.session_id
WHERE o.principal = $1 AND o.user_id = $2 {after}
    AND COALESCE(cardinality(h.seqs) + cardinality(h.pending), 0) > 0
ORDER BY o.updated_at DESC, o.session_id DESC
LIMIT $3"""

_FIRST_LISTED = _FIRST_USER_CONTENT.format(session="o.session_id")
LIST_SESSIONS_FIRST = _LIST.format(after="", first=_FIRST_LISTED)
LIST_SESSIONS_AFTER = _LIST.format(
    after="AND (o.updated_at, o.session_id) < ($4, $5)", first=_FIRST_LISTED
)

# -- turn_leases (`turn_leases.py`) --

# The statements (table: top-level `migrations/0003_turn_leases.sql`). A lease is taken
# when free or expired (`took_over`: an expired row was updated, not a new one inserted).
ACQUIRE_LEASE = """
INSERT INTO turn_leases (session_id, run_id, expires_at)
VALUES ($1, $2, clock_timestamp() + make_interval(secs => $3))
ON CONFLICT (session_id) DO UPDATE
SET run_id = EXCLUDED.run_id, expires_at = EXCLUDED.expires_at
WHERE turn_leases.expires_at < clock_timestamp()
RETURNING run_id, xmax::text <> '0' AS took_over"""

RENEW_LEASE = """
UPDATE turn_leases SET expires_at = clock_timestamp() + make_interval(secs => $3)
WHERE session_id = $1 AND run_id = $2"""

LEASE_HELD = """
SELECT EXISTS (SELECT FROM turn_leases WHERE session_id = $1 AND expires_at > clock_timestamp())"""

# A minute past expiry, a lease is no one's (a holder still running would have renewed).
DELETE_EXPIRED_LEASES = """
DELETE FROM turn_leases WHERE expires_at < clock_timestamp() - interval '1 minute'"""

RELEASE_LEASE = "DELETE FROM turn_leases WHERE session_id = $1 AND run_id = $2"

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

DELETE_SESSION_EVENTS = "DELETE FROM turn_events WHERE session_id = $1"

# Sent through the pool at start-up, to check that the LISTEN connection receives NOTIFYs.
PROBE_NOTIFY = "SELECT pg_notify($1, $2)"

# -- the API_WORKERS start-up check (`workers.py`) --

# The pid of the server process that answers (a pooler in between reports another one).
BACKEND_PID = "SELECT pg_backend_pid()"
MAX_CONNECTIONS = "SHOW max_connections"
SUPERUSER_RESERVED_CONNECTIONS = "SHOW superuser_reserved_connections"
RESERVED_CONNECTIONS = "SHOW reserved_connections"  # PostgreSQL 16+
