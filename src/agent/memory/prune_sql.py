"""SQL of `aprune(strategy="keep_latest")`, after the official Postgres saver's (`PRUNE_*`).

Each statement reads one session (`$1`); `ConversationCheckpointer.aprune` runs them in
one REPEATABLE READ transaction per session, so checkpoints a run saves meanwhile are
neither seen nor deleted. The conversation row and its transcript are never touched.
"""

# Sessions among `$1` that use a `DeltaChannel`: its update counters in a checkpoint's
# metadata (LangGraph.js marks such threads `delta_writes_versioned`), or a snapshot, i.e.
# an inline `true` with a blob behind it (a plain `True` value never has one).
DELTA_SESSIONS = """
SELECT session_id FROM checkpoints
WHERE session_id = ANY($1::uuid[]) AND (
    metadata ? 'counters_since_delta_snapshot' OR metadata ? 'delta_writes_versioned')
UNION
SELECT c.session_id
FROM checkpoints c
CROSS JOIN LATERAL jsonb_each(c.checkpoint -> 'channel_values') AS v
CROSS JOIN LATERAL (
    SELECT 1 FROM checkpoint_blobs b
    WHERE b.session_id = c.session_id AND b.checkpoint_ns = c.checkpoint_ns
        AND b.channel = v.key AND b.version = c.checkpoint -> 'channel_versions' ->> v.key
    LIMIT 1
) AS snapshot
WHERE c.session_id = ANY($1::uuid[]) AND v.value = 'true'::jsonb"""

# Per namespace: its latest checkpoint, the parent that one reads its pending sends from
# when it predates checkpoint v4, and the root checkpoint a subgraph call started from,
# with whether that one is saved. `__pregel_tasks` is LangGraph's `TASKS` channel.
HEADS = """
SELECT h.checkpoint_ns, h.checkpoint_id AS head,
    CASE WHEN (c.checkpoint ->> 'v')::int < 4 AND EXISTS (
        SELECT 1 FROM checkpoint_writes w
        WHERE w.session_id = $1 AND w.checkpoint_ns = h.checkpoint_ns
            AND w.checkpoint_id = c.parent_checkpoint_id AND w.channel = '__pregel_tasks'
    ) THEN c.parent_checkpoint_id END AS sends_parent,
    c.metadata -> 'parents' ->> '' AS root,
    EXISTS (
        SELECT 1 FROM checkpoints r
        WHERE r.session_id = $1 AND r.checkpoint_ns = ''
            AND r.checkpoint_id = c.metadata -> 'parents' ->> ''
    ) AS root_saved
FROM (
    SELECT DISTINCT ON (checkpoint_ns) checkpoint_ns, checkpoint_id FROM checkpoints
    WHERE session_id = $1 ORDER BY checkpoint_ns, checkpoint_id DESC
) AS h
CROSS JOIN LATERAL (
    SELECT checkpoint, parent_checkpoint_id, metadata FROM checkpoints
    WHERE session_id = $1 AND checkpoint_ns = h.checkpoint_ns
        AND checkpoint_id = h.checkpoint_id
) AS c"""

# Finished subgraph calls: namespaces `$2`, whole.
DELETE_NAMESPACES = (
    "DELETE FROM checkpoints WHERE session_id = $1 AND checkpoint_ns = ANY($2::text[])",
    "DELETE FROM checkpoint_writes WHERE session_id = $1 AND checkpoint_ns = ANY($2::text[])",
    "DELETE FROM checkpoint_blobs WHERE session_id = $1 AND checkpoint_ns = ANY($2::text[])",
)

# Every checkpoint of namespaces `$2` but the kept pairs ($2[i], $3[i]), with the writes
# of the deleted ones (writes saved ahead of their checkpoint stay); a kept checkpoint
# whose parent goes is left without one.
DELETE_UNKEPT = """
WITH keep AS (
    SELECT * FROM unnest($2::text[], $3::text[]) AS k(ns, id)
), gone AS (
    DELETE FROM checkpoints c
    WHERE c.session_id = $1 AND c.checkpoint_ns = ANY($2::text[])
        AND (c.checkpoint_ns, c.checkpoint_id) NOT IN (SELECT ns, id FROM keep)
    RETURNING c.checkpoint_ns, c.checkpoint_id
), writes AS (
    DELETE FROM checkpoint_writes w USING gone g
    WHERE w.session_id = $1 AND w.checkpoint_ns = g.checkpoint_ns
        AND w.checkpoint_id = g.checkpoint_id
)
UPDATE checkpoints c SET parent_checkpoint_id = NULL FROM keep k
WHERE c.session_id = $1 AND c.checkpoint_ns = k.ns AND c.checkpoint_id = k.id
    AND (k.ns, c.parent_checkpoint_id) NOT IN (SELECT ns, id FROM keep)"""

# Blobs of namespaces `$2` that no checkpoint left refers to.
DELETE_UNREFERENCED_BLOBS = """
DELETE FROM checkpoint_blobs b
WHERE b.session_id = $1 AND b.checkpoint_ns = ANY($2::text[]) AND NOT EXISTS (
    SELECT 1 FROM checkpoints c
    WHERE c.session_id = $1 AND c.checkpoint_ns = b.checkpoint_ns
        AND c.checkpoint -> 'channel_versions' ->> b.channel = b.version)"""
