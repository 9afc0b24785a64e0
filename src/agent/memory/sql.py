"""Every SQL statement of the checkpointer, in one place. All are parameterized."""

# The session's messages from seq $2 on (transcript or other branches), with the
# conversation row's identity.
MESSAGES_FROM = """
SELECT c.id, vera_messages_from($1, $2)::text AS tail FROM conversations c
WHERE c.session_id = $1"""

# `aput` in one round trip (`migrations/0005_message_store.sql`): $1 session, $2 ns,
# $3-$6 blob columns, $7-$11 checkpoint columns, $12 transcript channel, $13 its seqs,
# $14 new elements, $15-$16 the cached copy the plan was made from, $17 the turn's lease.
PUT_CHECKPOINT = """
SELECT row_id, next_seq, applied FROM vera_put_checkpoint(
    $1, $2, $3::text[], $4::text[], $5::text[], $6::bytea[], $7, $8, $9, $10::jsonb,
    $11::jsonb, $12, $13::int[], $14::jsonb, $15, $16, $17)"""

# Pending writes of a task ($6-$9 columns, $10 upsert, $11 lease); returns the
# conversation's id and whether this statement created it.
PUT_WRITES = """
SELECT row_id, created FROM vera_put_writes(
    $1, $2, $3, $4, $5, $6::int[], $7::text[], $8::text[], $9::bytea[], $10, $11)"""

# A checkpoint row with its channel blobs and pending writes, in one round trip; the rows
# come from a FROM clause appended to it, aliased `c`.
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
            ORDER BY w.task_path, w.task_id, w.idx)
        FROM checkpoint_writes w WHERE w.session_id = c.session_id
            AND w.checkpoint_ns = c.checkpoint_ns AND w.checkpoint_id = c.checkpoint_id) AS writes
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

# A page of `alist`: "{where}" and "{limit}" are filled by `tuples.build_list_query` with
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
INSERT INTO transcript_heads (session_id, checkpoint_id, seqs, version, next_seq)
SELECT $2, checkpoint_id, seqs, version, next_seq FROM transcript_heads WHERE session_id = $1
ON CONFLICT (session_id) DO UPDATE SET checkpoint_id = EXCLUDED.checkpoint_id,
    seqs = EXCLUDED.seqs, version = EXCLUDED.version, next_seq = EXCLUDED.next_seq"""

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

LEASE_HELD = """
SELECT EXISTS (SELECT FROM turn_leases WHERE session_id = $1 AND expires_at > clock_timestamp())"""

# A minute past expiry, a lease is no one's (a holder still running would have renewed).
DELETE_EXPIRED_LEASES = """
DELETE FROM turn_leases WHERE expires_at < clock_timestamp() - interval '1 minute'"""

RELEASE_LEASE = "DELETE FROM turn_leases WHERE session_id = $1 AND run_id = $2"
