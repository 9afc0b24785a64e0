-- One true history (issue "Memory: one true history").
--
-- Every message a checkpoint of the root graph holds is stored once, in the append-only
-- `conversation_messages` (one row per message version, numbered by `seq` within its
-- session); a checkpoint's `messages` blob lists the seqs of its messages as ranges.
-- `conversations.messages` is then only the readable projection of the thread's latest
-- root checkpoint (the current branch): `transcript_heads` says which checkpoint that is,
-- and which seqs it shows, so a step that extends the branch appends and a fork rewrites.

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
    next_seq INTEGER NOT NULL DEFAULT 0
);
ALTER TABLE transcript_heads SET (autovacuum_vacuum_scale_factor = 0.02);

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

-- The stored elements of `p_seqs`, in order.
CREATE OR REPLACE FUNCTION vera_elements(p_session UUID, p_seqs INTEGER[]) RETURNS JSONB
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN (SELECT COALESCE(jsonb_agg(m.element ORDER BY u.ord), '[]'::jsonb)
        FROM unnest(p_seqs) WITH ORDINALITY AS u(seq, ord)
        JOIN conversation_messages m ON m.session_id = p_session AND m.seq = u.seq);
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

-- `aput` in one round trip. Writers of one session serialize on its `conversations` row
-- (locked until commit); each statement below then sees what the previous holder
-- committed. `p_seqs` is the checkpoint's transcript as seqs, the elements of `p_new`
-- taking seqs `p_expect_next`, `p_expect_next + 1`, ...; both were planned from a cached
-- copy of the store believed to be row `p_expect_row` holding `p_expect_next` messages.
-- When that copy is stale nothing is written and `applied` is false: the caller refreshes
-- its copy and plans again. `p_seqs` NULL: the transcript channel `p_channel` did not
-- change, or is not a message list (its seqs, if any, are read from its blob).
-- A root checkpoint that is the session's latest becomes what `conversations.messages`
-- shows: appended to when it extends the branch shown, rewritten after a fork.
CREATE OR REPLACE FUNCTION vera_put_checkpoint(
    p_session UUID, p_ns TEXT,
    p_channels TEXT[], p_versions TEXT[], p_types TEXT[], p_blobs BYTEA[],
    p_checkpoint_id TEXT, p_parent_id TEXT, p_thread_id TEXT, p_checkpoint JSONB,
    p_metadata JSONB, p_channel TEXT,
    p_seqs INTEGER[], p_new JSONB, p_expect_row UUID, p_expect_next INTEGER
) RETURNS TABLE (row_id UUID, next_seq INTEGER, applied BOOLEAN)
LANGUAGE plpgsql AS $$
DECLARE
    v_row UUID;
    head transcript_heads%ROWTYPE;
    v_next INTEGER;
    v_seqs INTEGER[];
    shown INTEGER;
    v_moved BOOLEAN := false;
BEGIN
    SELECT c.id INTO v_row FROM conversations c WHERE c.session_id = p_session FOR UPDATE;
    IF NOT FOUND THEN
        INSERT INTO conversations (session_id) VALUES (p_session) ON CONFLICT DO NOTHING;
        SELECT c.id INTO v_row FROM conversations c WHERE c.session_id = p_session FOR UPDATE;
    END IF;
    SELECT * INTO head FROM transcript_heads h WHERE h.session_id = p_session;
    IF NOT FOUND THEN
        INSERT INTO transcript_heads (session_id) VALUES (p_session) RETURNING * INTO head;
    END IF;
    IF (p_expect_next > 0 AND v_row IS DISTINCT FROM p_expect_row)
        OR (p_new IS NOT NULL AND head.next_seq <> p_expect_next) THEN
        RETURN QUERY SELECT v_row, head.next_seq, false;
        RETURN;
    END IF;
    v_next := head.next_seq;
    IF p_new IS NOT NULL THEN
        INSERT INTO conversation_messages (session_id, seq, element)
        SELECT p_session, p_expect_next + (t.i - 1)::int, t.e
        FROM jsonb_array_elements(p_new) WITH ORDINALITY AS t(e, i);
        v_next := p_expect_next + jsonb_array_length(p_new);
    END IF;
    INSERT INTO checkpoint_blobs (session_id, checkpoint_ns, channel, version, type, blob)
    SELECT p_session, p_ns, u.channel, u.version, u.type, u.blob
    FROM unnest(p_channels, p_versions, p_types, p_blobs) AS u(channel, version, type, blob)
    ON CONFLICT (session_id, checkpoint_ns, channel, version) DO NOTHING;
    INSERT INTO checkpoints AS k (session_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id,
        thread_id, checkpoint, metadata)
    VALUES (p_session, p_ns, p_checkpoint_id, p_parent_id, p_thread_id, p_checkpoint, p_metadata)
    ON CONFLICT (session_id, checkpoint_ns, checkpoint_id)
    DO UPDATE SET checkpoint = EXCLUDED.checkpoint, metadata = EXCLUDED.metadata;

    v_seqs := head.seqs;
    IF p_ns = '' AND (head.checkpoint_id IS NULL OR p_checkpoint_id >= head.checkpoint_id) THEN
        v_seqs := COALESCE(p_seqs, vera_checkpoint_seqs(p_session, p_checkpoint, p_channel),
                           head.seqs);
        shown := cardinality(head.seqs);
        IF v_seqs <> head.seqs THEN
            IF shown <= cardinality(v_seqs) AND v_seqs[1:shown] = head.seqs THEN
                UPDATE conversations SET updated_at = NOW(),
                    messages = COALESCE(messages, '[]'::jsonb)
                        || vera_elements(p_session, v_seqs[shown + 1:])
                WHERE session_id = p_session;
            ELSE
                UPDATE conversations
                SET messages = vera_elements(p_session, v_seqs), updated_at = NOW()
                WHERE session_id = p_session;
            END IF;
        END IF;
        v_moved := head.checkpoint_id IS DISTINCT FROM p_checkpoint_id;
        head.checkpoint_id := p_checkpoint_id;
    END IF;
    IF v_moved OR v_next <> head.next_seq OR v_seqs <> head.seqs THEN
        UPDATE transcript_heads h SET next_seq = v_next, seqs = v_seqs,
            checkpoint_id = head.checkpoint_id
        WHERE h.session_id = p_session;
    END IF;
    RETURN QUERY SELECT v_row, v_next, true;
END
$$;

-- Recompute what `conversations.messages` shows from the checkpoints (after deletes).
CREATE OR REPLACE FUNCTION vera_refresh_transcript(p_session UUID, p_channel TEXT)
RETURNS VOID LANGUAGE plpgsql AS $$
DECLARE
    latest RECORD;
    shown INTEGER[];
BEGIN
    PERFORM 1 FROM conversations WHERE session_id = p_session FOR UPDATE;
    SELECT checkpoint_id, checkpoint INTO latest FROM checkpoints
    WHERE session_id = p_session AND checkpoint_ns = ''
    ORDER BY checkpoint_id DESC LIMIT 1;
    shown := COALESCE(vera_checkpoint_seqs(p_session, latest.checkpoint, p_channel), '{}');
    UPDATE conversations SET messages = vera_elements(p_session, shown)
    WHERE session_id = p_session AND messages IS DISTINCT FROM vera_elements(p_session, shown);
    UPDATE transcript_heads SET checkpoint_id = latest.checkpoint_id, seqs = shown
    WHERE session_id = p_session;
END
$$;

-- Upgrade: the old log (every message ever appended) becomes the message store, its
-- positions being the seqs the existing ranges blobs already hold.
INSERT INTO conversation_messages (session_id, seq, element)
SELECT c.session_id, (t.i - 1)::int, t.e
FROM conversations c, jsonb_array_elements(COALESCE(c.messages, '[]'::jsonb))
    WITH ORDINALITY AS t(e, i)
ON CONFLICT DO NOTHING;

INSERT INTO transcript_heads (session_id, next_seq)
SELECT session_id, jsonb_array_length(COALESCE(messages, '[]'::jsonb)) FROM conversations
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

-- Show each session's latest root checkpoint (the branch a fork left behind disappears
-- from the transcript; it stays readable through its checkpoints).
SELECT vera_refresh_transcript(c.session_id, NULL) FROM conversations c
WHERE EXISTS (SELECT FROM checkpoints k WHERE k.session_id = c.session_id AND k.checkpoint_ns = '');
