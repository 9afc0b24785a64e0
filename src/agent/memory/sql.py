"""Every SQL statement of the checkpointer, in one place. All are parameterized."""

UPSERT_CONVERSATION = """
INSERT INTO conversations (session_id) VALUES ($1)
ON CONFLICT (session_id) DO UPDATE SET updated_at = NOW()
RETURNING id, jsonb_array_length(COALESCE(messages, '[]'::jsonb)) AS length"""

APPEND_MESSAGES = """
UPDATE conversations SET messages = COALESCE(messages, '[]'::jsonb) || $2::jsonb
WHERE session_id = $1"""

# The transcript elements after position $2 (0-based), with the row identity and length.
TRANSCRIPT_TAIL = """
SELECT id, jsonb_array_length(COALESCE(messages, '[]'::jsonb)) AS length,
    (SELECT jsonb_agg(t.e ORDER BY t.i) FROM jsonb_array_elements(messages) WITH ORDINALITY
        AS t(e, i) WHERE t.i > $2)::text AS tail
FROM conversations WHERE session_id = $1"""

UPSERT_BLOBS = """
INSERT INTO checkpoint_blobs (session_id, checkpoint_ns, channel, version, type, blob)
SELECT $1, $2, u.channel, u.version, u.type, u.blob
FROM unnest($3::text[], $4::text[], $5::text[], $6::bytea[]) AS u(channel, version, type, blob)
ON CONFLICT (session_id, checkpoint_ns, channel, version) DO NOTHING"""

UPSERT_CHECKPOINT = """
INSERT INTO checkpoints (session_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id,
    thread_id, checkpoint, metadata)
VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7::jsonb)
ON CONFLICT (session_id, checkpoint_ns, checkpoint_id)
DO UPDATE SET checkpoint = EXCLUDED.checkpoint, metadata = EXCLUDED.metadata"""

# `aput` in one statement. $1 session, $2 ns, $3-$6 blob columns, $7-$11 checkpoint columns.
_PUT_BLOBS_AND_CHECKPOINT = """
blobs AS (
    INSERT INTO checkpoint_blobs (session_id, checkpoint_ns, channel, version, type, blob)
    SELECT $1, $2, u.channel, u.version, u.type, u.blob
    FROM unnest($3::text[], $4::text[], $5::text[], $6::bytea[])
        AS u(channel, version, type, blob)
    WHERE EXISTS (SELECT FROM conversation)
    ON CONFLICT (session_id, checkpoint_ns, channel, version) DO NOTHING
), saved AS (
    INSERT INTO checkpoints (session_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id,
        thread_id, checkpoint, metadata)
    SELECT $1, $2, $7, $8, $9, $10::jsonb, $11::jsonb WHERE EXISTS (SELECT FROM conversation)
    ON CONFLICT (session_id, checkpoint_ns, checkpoint_id)
    DO UPDATE SET checkpoint = EXCLUDED.checkpoint, metadata = EXCLUDED.metadata
)
SELECT id, created FROM conversation"""

# A checkpoint that does not touch the transcript; `created` when the conversation is new.
PUT_CHECKPOINT = (
    """
WITH conversation AS (
    INSERT INTO conversations (session_id) VALUES ($1)
    ON CONFLICT (session_id) DO UPDATE SET updated_at = NOW()
    RETURNING id, created_at = updated_at AS created
), """  # noqa: S608 (constant SQL joined to constant SQL; no input is formatted in)
    + _PUT_BLOBS_AND_CHECKPOINT
)

# A checkpoint appending $12 (NULL: nothing) to the transcript, written only if the row is
# still $13 holding $14 elements, i.e. the positions planned from the cache are right.
# Returns no row when it is not (another writer moved the log): nothing is written then.
PUT_CHECKPOINT_APPEND = (
    """
WITH conversation AS (
    UPDATE conversations SET updated_at = NOW(),
        messages = CASE WHEN $12::jsonb IS NULL THEN messages
                        ELSE COALESCE(messages, '[]'::jsonb) || $12::jsonb END
    WHERE session_id = $1 AND id = $13
        AND ($12::jsonb IS NULL
             OR jsonb_array_length(COALESCE(messages, '[]'::jsonb)) = $14)
    RETURNING id, false AS created
), """  # noqa: S608 (constant SQL joined to constant SQL; no input is formatted in)
    + _PUT_BLOBS_AND_CHECKPOINT
)

_WRITES = """
WITH conversation AS (
    INSERT INTO conversations (session_id) VALUES ($1)
    ON CONFLICT (session_id) DO UPDATE SET updated_at = NOW()
    RETURNING id, created_at = updated_at AS created
), written AS (
    INSERT INTO checkpoint_writes
        (session_id, checkpoint_ns, checkpoint_id, task_id, task_path, idx, channel, type, blob)
    SELECT $1, $2, $3, $4, $5, u.idx, u.channel, u.type, u.blob
    FROM unnest($6::int[], $7::text[], $8::text[], $9::bytea[]) AS u(idx, channel, type, blob)
    ON CONFLICT (session_id, checkpoint_ns, checkpoint_id, task_id, idx) {on_conflict}
)
SELECT id, created FROM conversation"""

# Pending writes; returns the conversation's id and whether this statement created it.
INSERT_WRITES = _WRITES.format(on_conflict="DO NOTHING")
UPSERT_WRITES = _WRITES.format(
    on_conflict="DO UPDATE SET channel = EXCLUDED.channel, type = EXCLUDED.type, "
    "blob = EXCLUDED.blob"
)

# A checkpoint row with its channel blobs and pending writes, in one round trip.
SELECT_TUPLES = """
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
            ORDER BY w.task_path, w.task_id, w.idx)
        FROM checkpoint_writes w WHERE w.session_id = c.session_id
            AND w.checkpoint_ns = c.checkpoint_ns AND w.checkpoint_id = c.checkpoint_id) AS writes
FROM checkpoints c"""

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

# keep_latest: the newest checkpoint of each namespace of each session survives.
PRUNE_KEEP_LATEST = """
WITH keep AS (
    SELECT DISTINCT ON (session_id, checkpoint_ns) session_id, checkpoint_ns, checkpoint_id
    FROM checkpoints WHERE session_id = ANY($1::uuid[])
    ORDER BY session_id, checkpoint_ns, checkpoint_id DESC
), gone AS (
    DELETE FROM checkpoints c WHERE c.session_id = ANY($1::uuid[])
    AND (c.session_id, c.checkpoint_ns, c.checkpoint_id) NOT IN (SELECT * FROM keep)
    RETURNING c.session_id, c.checkpoint_ns, c.checkpoint_id
), writes AS (
    DELETE FROM checkpoint_writes w USING gone g
    WHERE w.session_id = g.session_id AND w.checkpoint_ns = g.checkpoint_ns
        AND w.checkpoint_id = g.checkpoint_id
)
UPDATE checkpoints c SET parent_checkpoint_id = NULL FROM keep k
WHERE c.session_id = k.session_id AND c.checkpoint_ns = k.checkpoint_ns
    AND c.checkpoint_id = k.checkpoint_id"""

COPY_CONVERSATION = """
INSERT INTO conversations (session_id, messages)
SELECT $2, messages FROM conversations WHERE session_id = $1
ON CONFLICT (session_id) DO UPDATE SET messages = EXCLUDED.messages, updated_at = NOW()
RETURNING id"""

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

# Turn leases (`migrations/0003_turn_leases.sql`): taken when free or expired.
ACQUIRE_LEASE = """
INSERT INTO turn_leases (session_id, run_id, expires_at)
VALUES ($1, $2, clock_timestamp() + make_interval(secs => $3))
ON CONFLICT (session_id) DO UPDATE
SET run_id = EXCLUDED.run_id, expires_at = EXCLUDED.expires_at
WHERE turn_leases.expires_at < clock_timestamp()
RETURNING run_id"""

RENEW_LEASE = """
UPDATE turn_leases SET expires_at = clock_timestamp() + make_interval(secs => $3)
WHERE session_id = $1 AND run_id = $2"""

RELEASE_LEASE = "DELETE FROM turn_leases WHERE session_id = $1 AND run_id = $2"
