"""The SQL of the API's own tables (`session_owners`); the checkpointer's is in
`src/agent/memory/sql.py`."""

# A new session goes to the caller; one that exists without an owner row (written by
# Studio, or before ownership was recorded) to the default principal. Then the owner.
CLAIM_SESSION = """
WITH claimed AS (
    INSERT INTO session_owners (session_id, principal, user_id, title)
    SELECT $1,
           CASE WHEN c.session_id IS NULL THEN $2 ELSE $5 END,
           CASE WHEN c.session_id IS NULL THEN $3 ELSE '' END,
           $4
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

TOUCH_SESSION = "UPDATE session_owners SET updated_at = NOW() WHERE session_id = $1"

DELETE_OWNER = "DELETE FROM session_owners WHERE session_id = $1"

# Pages of one caller's sessions, newest first; the message count is the length of the
# transcript the checkpointer shows (`transcript_heads.seqs`), looked up per listed row.
_LIST = """
SELECT o.session_id, o.title, o.created_at, o.updated_at,
       COALESCE(cardinality(h.seqs), 0) AS message_count
FROM session_owners AS o
LEFT JOIN transcript_heads AS h ON h.session_id = o.session_id
WHERE o.principal = $1 AND o.user_id = $2 {after}
ORDER BY o.updated_at DESC, o.session_id DESC
LIMIT $3"""

LIST_SESSIONS_FIRST = _LIST.format(after="")
LIST_SESSIONS_AFTER = _LIST.format(after="AND (o.updated_at, o.session_id) < ($4, $5)")
