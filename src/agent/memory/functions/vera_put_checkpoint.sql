-- `aput` in one round trip. Writers of one session serialize on its `conversations` row
-- (locked until commit); each statement below then sees what the previous holder
-- committed. `p_seqs` is the checkpoint's transcript as seqs, the elements of `p_new`
-- taking seqs `p_expect_next`, `p_expect_next + 1`, ...; both were planned from a cached
-- copy of the session's messages believed to be of row `p_expect_row` and to hold
-- `p_expect_next` messages. When that copy is stale nothing is written and `applied` is
-- false: the caller refreshes its copy under the row lock and calls again. `p_seqs` NULL:
-- the transcript channel `p_channel` did not change, or is not a message list. A root
-- checkpoint that is the session's latest becomes what the transcript shows (at once, or
-- with `p_defer` when its run goes on and it only adds messages, at the run's end); the
-- new messages of any other checkpoint go to `conversation_messages`.
CREATE OR REPLACE FUNCTION vera_put_checkpoint(
    p_session UUID, p_ns TEXT,
    p_channels TEXT[], p_versions TEXT[], p_types TEXT[], p_blobs BYTEA[],
    p_checkpoint_id TEXT, p_parent_id TEXT, p_thread_id TEXT, p_checkpoint JSONB,
    p_metadata JSONB, p_channel TEXT,
    p_seqs INTEGER[], p_new JSONB, p_expect_row UUID, p_expect_next INTEGER, p_lease UUID,
    p_defer BOOLEAN, p_expect_head TEXT
) RETURNS TABLE (row_id UUID, next_seq INTEGER, applied BOOLEAN)
LANGUAGE plpgsql AS $$
DECLARE
    v_row UUID;
    head transcript_heads%ROWTYPE;
    v_next INTEGER;
    v_seqs INTEGER[];
    v_version TEXT;
    v_shown INTEGER;
BEGIN
    SELECT r.row_id INTO v_row FROM vera_conversation_row(p_session, true) AS r;
    SELECT * INTO head FROM transcript_heads h WHERE h.session_id = p_session;
    IF NOT FOUND THEN  -- new, or a conversation its pending writes created
        INSERT INTO transcript_heads (session_id) VALUES (p_session) RETURNING * INTO head;
    END IF;
    PERFORM vera_check_writer(p_session, p_lease);
    -- A run continuing from its own previous checkpoint (`p_expect_head`, when the caller
    -- knows it wrote it) while another writer has continued the thread since: storing it
    -- would fork the thread and hide the other writer's messages from the transcript.
    IF p_expect_head IS NOT NULL AND head.checkpoint_id IS DISTINCT FROM p_expect_head THEN
        RAISE EXCEPTION 'session %: another writer continued the thread after checkpoint %; this run is stale',
            p_session, p_expect_head USING ERRCODE = 'VR003';
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
            v_seqs := head.seqs || head.pending;  -- unchanged since the latest checkpoint
        ELSE
            v_seqs := vera_checkpoint_seqs(p_session, p_checkpoint, p_channel);
        END IF;
        v_shown := cardinality(head.seqs);
        IF v_seqs IS NULL THEN  -- not a message list: the transcript stays as it is
            IF p_new IS NOT NULL THEN  -- not reachable: new messages come with their seqs
                RAISE EXCEPTION 'session %: new messages without seqs', p_session;
            END IF;
            UPDATE transcript_heads h SET checkpoint_id = p_checkpoint_id, next_seq = v_next,
                version = v_version
            WHERE h.session_id = p_session;
        ELSIF p_defer AND cardinality(v_seqs) >= v_shown AND v_seqs[1:v_shown] = head.seqs
            AND NOT (v_seqs[v_shown + 1:] && head.seqs)
            -- LangGraph stores a step's writes and the checkpoint before it concurrently:
            -- a run that already stopped here (error, interrupt) has nothing left to wait.
            AND NOT EXISTS (SELECT FROM checkpoint_writes w
                WHERE w.session_id = p_session AND w.checkpoint_ns = ''
                    AND w.checkpoint_id = p_checkpoint_id
                    AND w.channel IN ('__error__', '__interrupt__')) THEN
            -- The run goes on and only adds messages: they wait for its end.
            INSERT INTO conversation_messages (session_id, seq, element)
            SELECT p_session, p_expect_next + (t.i - 1)::int, t.e
            FROM jsonb_array_elements(COALESCE(p_new, '[]'::jsonb)) WITH ORDINALITY AS t(e, i);
            UPDATE transcript_heads h SET checkpoint_id = p_checkpoint_id, next_seq = v_next,
                pending = v_seqs[v_shown + 1:], version = v_version
            WHERE h.session_id = p_session;
        ELSE
            PERFORM vera_show_seqs(p_session, head.seqs, v_seqs, p_new, p_expect_next);
            UPDATE transcript_heads h SET checkpoint_id = p_checkpoint_id, next_seq = v_next,
                seqs = v_seqs, pending = '{}', version = v_version
            WHERE h.session_id = p_session;
        END IF;
    ELSIF p_new IS NOT NULL THEN
        INSERT INTO conversation_messages (session_id, seq, element)
        SELECT p_session, p_expect_next + (t.i - 1)::int, t.e
        FROM jsonb_array_elements(p_new) WITH ORDINALITY AS t(e, i);
        UPDATE transcript_heads h SET next_seq = v_next WHERE h.session_id = p_session;
    END IF;
    RETURN QUERY SELECT v_row, v_next, true;
END
$$;
