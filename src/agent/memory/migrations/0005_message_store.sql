-- One true history: `conversations.messages` shows exactly the current branch, and every
-- branch stays readable by time travel, each message still stored once.
--
-- Messages are numbered by `seq` within their session (a replaced message is a new seq);
-- a root checkpoint's `messages` blob lists the seqs of its messages, as ranges.
-- `transcript_heads` says which root checkpoint `conversations.messages` shows (the
-- session's latest) and which seqs that is. A message lives in exactly one of two
-- places: in `conversations.messages` while the branch shown holds it, otherwise in the
-- insert-only `conversation_messages` (messages of other branches: put there when a fork
-- or a delete takes them out of the transcript, or when written by a checkpoint that is
-- not the latest). A linear conversation stores nothing in `conversation_messages`.

CREATE TABLE IF NOT EXISTS conversation_messages (
    session_id UUID NOT NULL REFERENCES conversations(session_id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    element JSONB NOT NULL,
    PRIMARY KEY (session_id, seq)
);

CREATE TABLE IF NOT EXISTS transcript_heads (
    session_id UUID PRIMARY KEY REFERENCES conversations(session_id) ON DELETE CASCADE,
    checkpoint_id TEXT,
    seqs INTEGER[] NOT NULL DEFAULT '{}',
    version TEXT,  -- the transcript channel's version in that checkpoint
    next_seq INTEGER NOT NULL DEFAULT 0
);
ALTER TABLE transcript_heads SET (autovacuum_vacuum_scale_factor = 0.02);

-- Every read names its session, so the primary key serves them all; this index only cost
-- bytes and WAL on each checkpoint, and misled plans made on stale statistics (a walk of
-- every newer checkpoint in the database instead of the session's key range).
DROP INDEX IF EXISTS idx_checkpoints_checkpoint_id;

-- Functions are PL/pgSQL so that each session plans their statements once and reuses the
-- plans (a SQL function that cannot be inlined is planned again at every call).

-- The seqs of a ranges blob (`[[start, end), ...]` as JSON), in order.
CREATE OR REPLACE FUNCTION vera_blob_seqs(blob BYTEA) RETURNS INTEGER[]
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
BEGIN
    RETURN (SELECT COALESCE(array_agg(s ORDER BY r.ord, s), '{}')
        FROM jsonb_array_elements(convert_from(blob, 'UTF8')::jsonb) WITH ORDINALITY
            AS r(rng, ord),
            generate_series((r.rng ->> 0)::int, (r.rng ->> 1)::int - 1) AS s);
END
$$;

-- The seqs of a root checkpoint's transcript channel `p_channel` (NULL: whichever channel
-- holds ranges): '{}' when the channel is absent or empty, NULL when it holds something
-- other than a message list (the transcript then stays as it is).
CREATE OR REPLACE FUNCTION vera_checkpoint_seqs(
    p_session UUID, p_checkpoint JSONB, p_channel TEXT
) RETURNS INTEGER[] LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_type TEXT;
    v_blob BYTEA;
BEGIN
    IF p_channel IS NOT NULL AND NOT (p_checkpoint -> 'channel_versions' ? p_channel) THEN
        RETURN '{}';
    END IF;
    SELECT b.type, b.blob INTO v_type, v_blob
    FROM jsonb_each_text(p_checkpoint -> 'channel_versions') AS v(channel, version)
    JOIN checkpoint_blobs b ON b.session_id = p_session AND b.checkpoint_ns = ''
        AND b.channel = v.channel AND b.version = v.version
    WHERE (p_channel IS NULL AND b.type = 'vera.transcript_ranges') OR v.channel = p_channel
    LIMIT 1;
    IF v_type = 'vera.transcript_ranges' THEN
        RETURN vera_blob_seqs(v_blob);
    ELSIF v_type = 'empty' OR (v_type IS NULL AND p_channel IS NULL) THEN
        RETURN '{}';
    END IF;
    RETURN NULL;
END
$$;

-- The session's messages from seq `p_from` on, in seq order, wherever they live (one
-- statement: one snapshot of the transcript, its head and the other branches' messages).
CREATE OR REPLACE FUNCTION vera_messages_from(p_session UUID, p_from INTEGER) RETURNS JSONB
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN (SELECT jsonb_agg(x.e ORDER BY x.seq) FROM (
        SELECT DISTINCT ON (seq) seq, e FROM (
            SELECT m.seq, m.element AS e FROM conversation_messages m
            WHERE m.session_id = p_session AND m.seq >= p_from
            UNION ALL
            SELECT u.seq, t.e
            FROM transcript_heads h JOIN conversations c ON c.session_id = h.session_id,
                unnest(h.seqs) WITH ORDINALITY AS u(seq, i),
                jsonb_array_elements(c.messages) WITH ORDINALITY AS t(e, j)
            WHERE h.session_id = p_session AND u.i = t.j AND u.seq >= p_from
        ) AS found ORDER BY seq) AS x);
END
$$;

-- Make the transcript show `p_seqs` (the caller holds the session's conversations row
-- lock). The elements come from `p_new` (new messages, seqs `p_new_from`, ...), from the
-- transcript itself or from `conversation_messages`; messages leaving the transcript move
-- to `conversation_messages`, and those coming back leave it. A branch that grows by
-- exactly its new messages is appended to, without reading anything back.
CREATE OR REPLACE FUNCTION vera_show_seqs(
    p_session UUID, p_shown INTEGER[], p_seqs INTEGER[], p_new JSONB, p_new_from INTEGER
) RETURNS VOID LANGUAGE plpgsql AS $$
DECLARE
    v_count INTEGER := cardinality(p_shown);
    v_new_count INTEGER := COALESCE(jsonb_array_length(p_new), 0);
    v_old JSONB;
    v_result JSONB;
    v_missing INTEGER;
BEGIN
    IF p_seqs = p_shown THEN
        RETURN;
    END IF;
    IF v_count + v_new_count = cardinality(p_seqs) AND p_seqs[1:v_count] = p_shown
        AND (v_new_count = 0 OR p_seqs[v_count + 1:] = ARRAY(
            SELECT generate_series(p_new_from, p_new_from + v_new_count - 1))) THEN
        UPDATE conversations
        SET messages = COALESCE(messages, '[]'::jsonb) || COALESCE(p_new, '[]'::jsonb),
            updated_at = NOW()
        WHERE session_id = p_session;
        RETURN;
    END IF;
    SELECT c.messages INTO v_old FROM conversations c WHERE c.session_id = p_session;
    INSERT INTO conversation_messages (session_id, seq, element)
    SELECT DISTINCT ON (u.seq) p_session, u.seq, t.e
    FROM unnest(p_shown) WITH ORDINALITY AS u(seq, i)
    JOIN jsonb_array_elements(COALESCE(v_old, '[]'::jsonb)) WITH ORDINALITY AS t(e, j)
        ON u.i = t.j
    WHERE u.seq <> ALL (p_seqs)
    ON CONFLICT DO NOTHING;
    SELECT COALESCE(jsonb_agg(COALESCE(n.e, o.e, m.element) ORDER BY v.ord), '[]'::jsonb),
        count(*) FILTER (WHERE COALESCE(n.e, o.e, m.element) IS NULL)
    INTO v_result, v_missing
    FROM unnest(p_seqs) WITH ORDINALITY AS v(seq, ord)
    LEFT JOIN (SELECT p_new_from + (x.i - 1)::int AS seq, x.e
               FROM jsonb_array_elements(COALESCE(p_new, '[]'::jsonb)) WITH ORDINALITY
                   AS x(e, i)) AS n ON n.seq = v.seq
    LEFT JOIN (SELECT DISTINCT ON (u.seq) u.seq, t.e
               FROM unnest(p_shown) WITH ORDINALITY AS u(seq, i)
               JOIN jsonb_array_elements(COALESCE(v_old, '[]'::jsonb)) WITH ORDINALITY
                   AS t(e, j) ON u.i = t.j) AS o ON o.seq = v.seq
    LEFT JOIN conversation_messages m ON m.session_id = p_session AND m.seq = v.seq;
    IF v_missing > 0 THEN
        RAISE EXCEPTION 'session %: % of the messages to show are stored nowhere',
            p_session, v_missing;
    END IF;
    UPDATE conversations SET messages = v_result, updated_at = NOW()
    WHERE session_id = p_session;
    -- Messages of another branch that are shown again live in the transcript only.
    DELETE FROM conversation_messages m WHERE m.session_id = p_session AND m.seq = ANY (p_seqs);
END
$$;

-- Fencing: a write made for a turn names the turn's lease (`turn_leases.run_id`) and is
-- refused (SQLSTATE VR001) unless that lease is still this session's. The row is locked
-- FOR SHARE until the write commits, so no other worker can take the session over between
-- the check and the write.
CREATE OR REPLACE FUNCTION vera_check_lease(p_session UUID, p_lease UUID) RETURNS VOID
LANGUAGE plpgsql AS $$
BEGIN
    IF p_lease IS NULL THEN
        RETURN;
    END IF;
    PERFORM 1 FROM turn_leases l WHERE l.session_id = p_session AND l.run_id = p_lease
    FOR SHARE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'session %: lease % is no longer held', p_session, p_lease
            USING ERRCODE = 'VR001';
    END IF;
END
$$;

-- `aput` in one round trip. Writers of one session serialize on its `conversations` row
-- (locked until commit); each statement below then sees what the previous holder
-- committed. `p_seqs` is the checkpoint's transcript as seqs, the elements of `p_new`
-- taking seqs `p_expect_next`, `p_expect_next + 1`, ...; both were planned from a cached
-- copy of the session's messages believed to be of row `p_expect_row` and to hold
-- `p_expect_next` messages. When that copy is stale nothing is written and `applied` is
-- false: the caller refreshes its copy and plans again. `p_seqs` NULL: the transcript
-- channel `p_channel` did not change, or is not a message list. A root checkpoint that is
-- the session's latest becomes what the transcript shows; the new messages of any other
-- checkpoint go to `conversation_messages`.
CREATE OR REPLACE FUNCTION vera_put_checkpoint(
    p_session UUID, p_ns TEXT,
    p_channels TEXT[], p_versions TEXT[], p_types TEXT[], p_blobs BYTEA[],
    p_checkpoint_id TEXT, p_parent_id TEXT, p_thread_id TEXT, p_checkpoint JSONB,
    p_metadata JSONB, p_channel TEXT,
    p_seqs INTEGER[], p_new JSONB, p_expect_row UUID, p_expect_next INTEGER, p_lease UUID
) RETURNS TABLE (row_id UUID, next_seq INTEGER, applied BOOLEAN)
LANGUAGE plpgsql AS $$
DECLARE
    v_row UUID;
    head transcript_heads%ROWTYPE;
    v_next INTEGER;
    v_seqs INTEGER[];
    v_version TEXT;
BEGIN
    head.session_id := NULL;
    -- One statement reads the conversation (locking it) and what its transcript shows.
    SELECT c.id, h.session_id, h.checkpoint_id, h.seqs, h.version, h.next_seq
    INTO v_row, head.session_id, head.checkpoint_id, head.seqs, head.version, head.next_seq
    FROM conversations c LEFT JOIN transcript_heads h ON h.session_id = c.session_id
    WHERE c.session_id = p_session FOR UPDATE OF c;
    IF NOT FOUND THEN  -- a new conversation: the row we insert is ours (locked) till commit
        INSERT INTO conversations (session_id) VALUES (p_session) ON CONFLICT DO NOTHING
        RETURNING id INTO v_row;
        IF v_row IS NULL THEN  -- inserted by a concurrent writer meanwhile
            SELECT c.id, h.session_id, h.checkpoint_id, h.seqs, h.version, h.next_seq
            INTO v_row, head.session_id, head.checkpoint_id, head.seqs, head.version,
                head.next_seq
            FROM conversations c LEFT JOIN transcript_heads h ON h.session_id = c.session_id
            WHERE c.session_id = p_session FOR UPDATE OF c;
        END IF;
    END IF;
    IF head.session_id IS NULL THEN  -- new, or a conversation its pending writes created
        INSERT INTO transcript_heads (session_id) VALUES (p_session) RETURNING * INTO head;
    END IF;
    IF p_lease IS NOT NULL THEN
        PERFORM vera_check_lease(p_session, p_lease);
    END IF;
    IF (p_expect_next > 0 AND v_row IS DISTINCT FROM p_expect_row)
        OR (p_new IS NOT NULL AND head.next_seq <> p_expect_next) THEN
        RETURN QUERY SELECT v_row, head.next_seq, false;
        RETURN;
    END IF;
    v_next := head.next_seq + COALESCE(jsonb_array_length(p_new), 0);

    INSERT INTO checkpoint_blobs (session_id, checkpoint_ns, channel, version, type, blob)
    SELECT p_session, p_ns, u.channel, u.version, u.type, u.blob
    FROM unnest(p_channels, p_versions, p_types, p_blobs) AS u(channel, version, type, blob)
    ON CONFLICT (session_id, checkpoint_ns, channel, version) DO NOTHING;
    INSERT INTO checkpoints AS k (session_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id,
        thread_id, checkpoint, metadata)
    VALUES (p_session, p_ns, p_checkpoint_id, p_parent_id, p_thread_id, p_checkpoint, p_metadata)
    ON CONFLICT (session_id, checkpoint_ns, checkpoint_id)
    DO UPDATE SET checkpoint = EXCLUDED.checkpoint, metadata = EXCLUDED.metadata;

    IF p_ns = '' AND (head.checkpoint_id IS NULL OR p_checkpoint_id >= head.checkpoint_id) THEN
        v_version := p_checkpoint -> 'channel_versions' ->> p_channel;
        IF p_seqs IS NOT NULL THEN
            v_seqs := p_seqs;
        ELSIF v_version IS NOT DISTINCT FROM head.version THEN
            v_seqs := head.seqs;  -- the channel did not change since the checkpoint shown
        ELSE
            v_seqs := vera_checkpoint_seqs(p_session, p_checkpoint, p_channel);
        END IF;
        IF v_seqs IS NOT NULL THEN
            PERFORM vera_show_seqs(p_session, head.seqs, v_seqs, p_new, p_expect_next);
        ELSIF p_new IS NOT NULL THEN  -- not reachable: new messages come with their seqs
            RAISE EXCEPTION 'session %: new messages without seqs', p_session;
        END IF;
        UPDATE transcript_heads h SET checkpoint_id = p_checkpoint_id, next_seq = v_next,
            seqs = COALESCE(v_seqs, head.seqs), version = v_version
        WHERE h.session_id = p_session;
    ELSIF p_new IS NOT NULL THEN
        INSERT INTO conversation_messages (session_id, seq, element)
        SELECT p_session, p_expect_next + (t.i - 1)::int, t.e
        FROM jsonb_array_elements(p_new) WITH ORDINALITY AS t(e, i);
        UPDATE transcript_heads h SET next_seq = v_next WHERE h.session_id = p_session;
    END IF;
    RETURN QUERY SELECT v_row, v_next, true;
END
$$;

-- `aput_writes` in one round trip: pending writes of a task, fenced like checkpoints.
-- `p_upsert`: replace writes of the same index (LangGraph's special channels: errors,
-- interrupts); otherwise the first write of an index stays. Returns the conversation
-- row and whether this call created it.
CREATE OR REPLACE FUNCTION vera_put_writes(
    p_session UUID, p_ns TEXT, p_checkpoint_id TEXT, p_task_id TEXT, p_task_path TEXT,
    p_idxs INTEGER[], p_channels TEXT[], p_types TEXT[], p_blobs BYTEA[], p_upsert BOOLEAN,
    p_lease UUID
) RETURNS TABLE (row_id UUID, created BOOLEAN)
LANGUAGE plpgsql AS $$
DECLARE
    v_row UUID;
    v_created BOOLEAN := false;
BEGIN
    SELECT c.id INTO v_row FROM conversations c WHERE c.session_id = p_session;
    IF NOT FOUND THEN
        INSERT INTO conversations (session_id) VALUES (p_session) ON CONFLICT DO NOTHING
        RETURNING id INTO v_row;
        v_created := v_row IS NOT NULL;
        IF NOT v_created THEN
            SELECT c.id INTO v_row FROM conversations c WHERE c.session_id = p_session;
        END IF;
    END IF;
    IF p_lease IS NOT NULL THEN
        PERFORM vera_check_lease(p_session, p_lease);
    END IF;
    IF p_upsert THEN
        INSERT INTO checkpoint_writes (session_id, checkpoint_ns, checkpoint_id, task_id,
            task_path, idx, channel, type, blob)
        SELECT p_session, p_ns, p_checkpoint_id, p_task_id, p_task_path, u.idx, u.channel,
            u.type, u.blob
        FROM unnest(p_idxs, p_channels, p_types, p_blobs) AS u(idx, channel, type, blob)
        ON CONFLICT (session_id, checkpoint_ns, checkpoint_id, task_id, idx)
        DO UPDATE SET channel = EXCLUDED.channel, type = EXCLUDED.type, blob = EXCLUDED.blob;
    ELSE
        INSERT INTO checkpoint_writes (session_id, checkpoint_ns, checkpoint_id, task_id,
            task_path, idx, channel, type, blob)
        SELECT p_session, p_ns, p_checkpoint_id, p_task_id, p_task_path, u.idx, u.channel,
            u.type, u.blob
        FROM unnest(p_idxs, p_channels, p_types, p_blobs) AS u(idx, channel, type, blob)
        ON CONFLICT (session_id, checkpoint_ns, checkpoint_id, task_id, idx) DO NOTHING;
    END IF;
    RETURN QUERY SELECT v_row, v_created;
END
$$;

-- Show the session's latest remaining root checkpoint (after checkpoints were deleted).
CREATE OR REPLACE FUNCTION vera_refresh_transcript(p_session UUID, p_channel TEXT)
RETURNS VOID LANGUAGE plpgsql AS $$
DECLARE
    latest RECORD;
    v_shown INTEGER[];
    v_seqs INTEGER[];
BEGIN
    PERFORM 1 FROM conversations WHERE session_id = p_session FOR UPDATE;
    INSERT INTO transcript_heads (session_id) VALUES (p_session) ON CONFLICT DO NOTHING;
    SELECT h.seqs INTO v_shown FROM transcript_heads h WHERE h.session_id = p_session;
    SELECT checkpoint_id, checkpoint INTO latest FROM checkpoints
    WHERE session_id = p_session AND checkpoint_ns = ''
    ORDER BY checkpoint_id DESC LIMIT 1;
    v_seqs := COALESCE(vera_checkpoint_seqs(p_session, latest.checkpoint, p_channel), '{}');
    PERFORM vera_show_seqs(p_session, v_shown, v_seqs, NULL, 0);
    UPDATE transcript_heads SET checkpoint_id = latest.checkpoint_id, seqs = v_seqs,
        version = latest.checkpoint -> 'channel_versions' ->> p_channel
    WHERE session_id = p_session;
END
$$;

-- Upgrade. Until now `conversations.messages` was an append-only log of every message
-- ever checkpointed, positions being the seqs the ranges blobs hold: it becomes the
-- transcript of the log's every position (seqs 0..n-1 shown), then each session shows its
-- latest root checkpoint, moving the other branches' messages out.
INSERT INTO transcript_heads (session_id, seqs, next_seq)
SELECT session_id,
    ARRAY(SELECT generate_series(0, jsonb_array_length(COALESCE(messages, '[]'::jsonb)) - 1)),
    jsonb_array_length(COALESCE(messages, '[]'::jsonb))
FROM conversations
ON CONFLICT DO NOTHING;

-- Channel versions in LangGraph's standard form (`%032d.%016f`, as `langgraph dev` and the
-- official saver write them), so versions written by either compare correctly as strings.
CREATE FUNCTION pg_temp.std_version(v JSONB) RETURNS JSONB LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN jsonb_typeof(v) = 'string' AND (v #>> '{}') ~ '^[0-9]{10}\.[0-9a-f]{8}$'
        THEN to_jsonb(lpad(split_part(v #>> '{}', '.', 1)::bigint::text, 32, '0') || '.0.'
            || lpad((('x' || split_part(v #>> '{}', '.', 2))::bit(32)::bigint)::text, 14, '0'))
        ELSE v END
$$;

CREATE FUNCTION pg_temp.std_versions(m JSONB) RETURNS JSONB LANGUAGE sql IMMUTABLE AS $$
    SELECT COALESCE(jsonb_object_agg(key, pg_temp.std_version(value)), '{}'::jsonb)
    FROM jsonb_each(COALESCE(m, '{}'::jsonb))
$$;

UPDATE checkpoint_blobs SET version = pg_temp.std_version(to_jsonb(version)) #>> '{}'
WHERE version ~ '^[0-9]{10}\.[0-9a-f]{8}$';

UPDATE checkpoints SET checkpoint = checkpoint
    || jsonb_build_object('channel_versions', pg_temp.std_versions(checkpoint -> 'channel_versions'))
    || jsonb_build_object('versions_seen', (
        SELECT COALESCE(jsonb_object_agg(n.key, pg_temp.std_versions(n.value)), '{}'::jsonb)
        FROM jsonb_each(COALESCE(checkpoint -> 'versions_seen', '{}'::jsonb)) AS n));

SELECT vera_refresh_transcript(c.session_id, NULL) FROM conversations c
WHERE EXISTS (SELECT FROM checkpoints k WHERE k.session_id = c.session_id AND k.checkpoint_ns = '');
