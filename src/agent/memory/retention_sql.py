"""SQL of checkpoint retention (`retention_ops.py`). Each statement reads or writes one
session (`$1`) unless it says otherwise; the memory library's tables only."""

# The session's conversation row, locked as a writer locks it (`vera_put_checkpoint`), so no
# checkpoint is stored while the session is pruned; no row when a writer holds it now.
LOCK_SESSION = """
SELECT session_id FROM conversations WHERE session_id = $1 FOR NO KEY UPDATE SKIP LOCKED"""

# Whether the session exists (`LOCK_SESSION` found no row: unknown, or a writer holds it).
SESSION_KNOWN = "SELECT EXISTS (SELECT FROM conversations WHERE session_id = $1)"

# Whether a turn holds the session's lease now (`leases.py`), and the transaction's time.
LEASE_HELD = """
SELECT EXISTS (SELECT FROM turn_leases l
    WHERE l.session_id = $1 AND l.expires_at > clock_timestamp()) AS held, now() AS now"""

# Every checkpoint of the session, with what `retention.select` reads of it: its root
# checkpoint (`metadata.parents['']`), whether it reads its parent's sends (format < 4, as
# `prune_sql.HEADS`), and which of the thread's delta channels it has a version of and
# stores a value for (an inline value but JSON null, or a blob that is not `empty`). The
# delta channels are those named by a checkpoint's `counters_since_delta_snapshot`, or
# stored as a snapshot (an inline `true` with a blob behind it).
CHECKPOINTS = """
WITH delta AS (
    SELECT DISTINCT k.channel FROM checkpoints c,
        jsonb_object_keys(c.metadata -> 'counters_since_delta_snapshot') AS k(channel)
    WHERE c.session_id = $1
        AND jsonb_typeof(c.metadata -> 'counters_since_delta_snapshot') = 'object'
    UNION
    SELECT v.key FROM checkpoints c, jsonb_each(c.checkpoint -> 'channel_values') AS v
    WHERE c.session_id = $1 AND v.value = 'true'::jsonb AND EXISTS (
        SELECT FROM checkpoint_blobs b
        WHERE b.session_id = c.session_id AND b.checkpoint_ns = c.checkpoint_ns
            AND b.channel = v.key AND b.version = c.checkpoint -> 'channel_versions' ->> v.key)
)
SELECT c.checkpoint_ns, c.checkpoint_id, c.parent_checkpoint_id, c.created_at,
    c.metadata -> 'parents' ->> '' AS root,
    (c.checkpoint ->> 'v')::int < 4 AND EXISTS (
        SELECT FROM checkpoint_writes w
        WHERE w.session_id = $1 AND w.checkpoint_ns = c.checkpoint_ns
            AND w.checkpoint_id = c.parent_checkpoint_id AND w.channel = '__pregel_tasks'
    ) AS reads_parent_sends,
    ARRAY(SELECT d.channel FROM delta d
        WHERE c.checkpoint -> 'channel_versions' ? d.channel) AS versioned,
    ARRAY(SELECT d.channel FROM delta d
        WHERE COALESCE(c.checkpoint -> 'channel_values' -> d.channel, 'null') <> 'null'
            OR EXISTS (SELECT FROM checkpoint_blobs b
                WHERE b.session_id = $1 AND b.checkpoint_ns = c.checkpoint_ns
                    AND b.channel = d.channel
                    AND b.version = c.checkpoint -> 'channel_versions' ->> d.channel
                    AND b.type <> 'empty')) AS valued,
    c.metadata ? 'delta_writes_versioned' AS opaque_delta
FROM checkpoints c WHERE c.session_id = $1"""

# Delete the checkpoints ($2[i], $3[i]) with their writes, and every write of namespaces
# `$4` (subgraph calls that go whole, writes saved ahead of a checkpoint included): how
# many rows went and the bytes they took as stored.
DELETE_CHECKPOINTS = """
WITH gone AS (
    DELETE FROM checkpoints c USING unnest($2::text[], $3::text[]) AS g(ns, id)
    WHERE c.session_id = $1 AND c.checkpoint_ns = g.ns AND c.checkpoint_id = g.id
    RETURNING c.checkpoint_ns, c.checkpoint_id, pg_column_size(c.*) AS size
), writes AS (
    DELETE FROM checkpoint_writes w
    WHERE w.session_id = $1 AND (w.checkpoint_ns = ANY($4::text[])
        OR (w.checkpoint_ns, w.checkpoint_id) IN (SELECT checkpoint_ns, checkpoint_id FROM gone))
    RETURNING pg_column_size(w.*) AS size
)
SELECT (SELECT count(*) FROM gone) AS checkpoints, (SELECT count(*) FROM writes) AS writes,
    (SELECT COALESCE(sum(size), 0) FROM gone)
        + (SELECT COALESCE(sum(size), 0) FROM writes) AS bytes"""

# Kept checkpoints ($2[i], $3[i]) whose parent went: the history starts at them.
CLEAR_PARENTS = """
UPDATE checkpoints c SET parent_checkpoint_id = NULL
FROM unnest($2::text[], $3::text[]) AS k(ns, id)
WHERE c.session_id = $1 AND c.checkpoint_ns = k.ns AND c.checkpoint_id = k.id"""

# Blobs no checkpoint of the session refers to any more: how many, and their bytes.
DELETE_UNREFERENCED_BLOBS = """
WITH gone AS (
    DELETE FROM checkpoint_blobs b
    WHERE b.session_id = $1 AND NOT EXISTS (
        SELECT FROM checkpoints c
        WHERE c.session_id = $1 AND c.checkpoint_ns = b.checkpoint_ns
            AND c.checkpoint -> 'channel_versions' ->> b.channel = b.version)
    RETURNING pg_column_size(b.*) AS size
)
SELECT count(*) AS blobs, COALESCE(sum(size), 0) AS bytes FROM gone"""

# Where this prune left the session: its head, the policy, and when a checkpoint kept for
# its age falls out (`$4`, NULL: never).
MARK = """
INSERT INTO checkpoint_retention AS r (session_id, head, policy, due_at)
VALUES ($1, $2, $3, $4)
ON CONFLICT (session_id) DO UPDATE
SET head = EXCLUDED.head, policy = EXCLUDED.policy, due_at = EXCLUDED.due_at,
    retained_at = now()"""

# Up to `$3` sessions after `$1` (in session order) that policy `$2` has not pruned since
# their head last moved or a kept checkpoint fell out of its age, and that no turn holds:
# the sweep's candidates (one walk of `transcript_heads`, probing each mark by key).
DUE_SESSIONS = """
SELECT h.session_id FROM transcript_heads h
LEFT JOIN checkpoint_retention r ON r.session_id = h.session_id
WHERE h.session_id > $1 AND h.checkpoint_id IS NOT NULL
    AND (r.session_id IS NULL OR r.head IS DISTINCT FROM h.checkpoint_id
        OR r.policy <> $2 OR r.due_at <= now())
    AND NOT EXISTS (SELECT FROM turn_leases l
        WHERE l.session_id = h.session_id AND l.expires_at > clock_timestamp())
ORDER BY h.session_id
LIMIT $3"""
