-- The transcript is rewritten once per turn instead of at every step.
--
-- `conversations.messages` is one JSONB value, which PostgreSQL rewrites whole (TOAST and
-- all) at every update: a tool turn (question, tool call, tool result, answer) rewrote it
-- four times, and each rewrite left a dead copy for autovacuum. While the graph still has a
-- task to run (the caller says so: `p_defer`), a step's new messages now wait in the
-- append-only `conversation_messages`, their seqs in `transcript_heads.pending`; the step
-- that ends the run, a failed or interrupted step (`vera_show_latest`), or any step that
-- doesn't only grow the transcript shows them all in one rewrite. The latest root
-- checkpoint's transcript is always `seqs || pending`; `conversations.messages` shows
-- `seqs`.

ALTER TABLE transcript_heads ADD COLUMN IF NOT EXISTS pending INTEGER[] NOT NULL DEFAULT '{}';

-- The session's conversation row, created when missing (`created`); with `p_lock` it stays
-- locked until commit, which is how writers of one session take turns. The lock is FOR NO
-- KEY UPDATE (what an UPDATE of `messages` takes anyway): it leaves the foreign-key checks
-- of concurrent inserts (a step's pending writes, stored while its checkpoint is) free to
-- go on, where FOR UPDATE made them wait for each other.
CREATE OR REPLACE FUNCTION vera_conversation_row(
    p_session UUID, p_lock BOOLEAN, OUT row_id UUID, OUT created BOOLEAN
) LANGUAGE plpgsql AS $$
BEGIN
    created := false;
    LOOP
        IF p_lock THEN
            SELECT c.id INTO row_id FROM conversations c WHERE c.session_id = p_session
            FOR NO KEY UPDATE;
        ELSE
            SELECT c.id INTO row_id FROM conversations c WHERE c.session_id = p_session;
        END IF;
        IF FOUND THEN
            RETURN;
        END IF;
        INSERT INTO conversations (session_id) VALUES (p_session) ON CONFLICT DO NOTHING
        RETURNING id INTO row_id;
        IF row_id IS NOT NULL THEN  -- ours, and locked by the insert till commit
            created := true;
            RETURN;
        END IF;  -- inserted by a concurrent writer meanwhile: read it again
    END LOOP;
END
$$;

-- Make the transcript show `p_seqs` (the caller holds the session's conversations row
-- lock). The elements come from `p_new` (new messages, seqs `p_new_from`, ...), from the
-- transcript itself or from `conversation_messages`; messages leaving the transcript move
-- to `conversation_messages`, and those coming back leave it. A branch that only grows is
-- appended to (its new and waiting messages), without reading the transcript back.
CREATE OR REPLACE FUNCTION vera_show_seqs(
    p_session UUID, p_shown INTEGER[], p_seqs INTEGER[], p_new JSONB, p_new_from INTEGER
) RETURNS VOID LANGUAGE plpgsql AS $$
DECLARE
    v_count INTEGER := cardinality(p_shown);
    v_tail INTEGER[];
    v_old JSONB;
    v_result JSONB;
    v_missing INTEGER;
    v_waiting INTEGER;
BEGIN
    IF p_seqs = p_shown THEN
        RETURN;
    END IF;
    IF cardinality(p_seqs) > v_count AND p_seqs[1:v_count] = p_shown THEN
        v_tail := p_seqs[v_count + 1:];
        SELECT jsonb_agg(COALESCE(n.e, m.element) ORDER BY v.ord),
            count(*) FILTER (WHERE n.e IS NULL AND m.element IS NULL),
            count(*) FILTER (WHERE n.e IS NULL AND m.element IS NOT NULL)
        INTO v_result, v_missing, v_waiting
        FROM unnest(v_tail) WITH ORDINALITY AS v(seq, ord)
        LEFT JOIN (SELECT p_new_from + (x.i - 1)::int AS seq, x.e
                   FROM jsonb_array_elements(COALESCE(p_new, '[]'::jsonb)) WITH ORDINALITY
                       AS x(e, i)) AS n ON n.seq = v.seq
        LEFT JOIN conversation_messages m ON m.session_id = p_session AND m.seq = v.seq;
        IF v_missing = 0 THEN  -- else a seq the transcript already shows: the slow way
            UPDATE conversations
            SET messages = COALESCE(messages, '[]'::jsonb) || v_result, updated_at = NOW()
            WHERE session_id = p_session;
            IF v_waiting > 0 THEN
                DELETE FROM conversation_messages m
                WHERE m.session_id = p_session AND m.seq = ANY (v_tail);
            END IF;
            RETURN;
        END IF;
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

-- Fencing (see `vera_check_lease`, migration 5), and one more rule: a write that carries no
-- lease (LangGraph Studio, a script) is refused (SQLSTATE VR002) while a turn of the API
-- holds the session, instead of forking the conversation under it (the later write would
-- then silently decide which run's messages the transcript shows). Without the API's
-- `turn_leases` table (the checkpointer used as a library) there is nothing to check.
CREATE OR REPLACE FUNCTION vera_check_writer(p_session UUID, p_lease UUID) RETURNS VOID
LANGUAGE plpgsql AS $$
BEGIN
    IF p_lease IS NOT NULL THEN
        PERFORM vera_check_lease(p_session, p_lease);
    ELSIF to_regclass('turn_leases') IS NOT NULL THEN
        PERFORM 1 FROM turn_leases l
        WHERE l.session_id = p_session AND l.expires_at > clock_timestamp();
        IF FOUND THEN
            RAISE EXCEPTION 'session %: a turn of the API is running on it; write again when it ends',
                p_session USING ERRCODE = 'VR002';
        END IF;
    END IF;
END
$$;

-- Show the messages waiting in `pending` (a run failed or stopped for an interrupt).
CREATE OR REPLACE FUNCTION vera_show_latest(p_session UUID) RETURNS VOID
LANGUAGE plpgsql AS $$
DECLARE
    head transcript_heads%ROWTYPE;
BEGIN
    PERFORM 1 FROM vera_conversation_row(p_session, true);
    SELECT * INTO head FROM transcript_heads h WHERE h.session_id = p_session;
    IF NOT FOUND OR cardinality(head.pending) = 0 THEN
        RETURN;
    END IF;
    PERFORM vera_show_seqs(p_session, head.seqs, head.seqs || head.pending, NULL, 0);
    UPDATE transcript_heads h SET seqs = head.seqs || head.pending, pending = '{}'
    WHERE h.session_id = p_session;
END
$$;

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
DROP FUNCTION IF EXISTS vera_put_checkpoint(UUID, TEXT, TEXT[], TEXT[], TEXT[], BYTEA[], TEXT,
    TEXT, TEXT, JSONB, JSONB, TEXT, INTEGER[], JSONB, UUID, INTEGER, UUID);
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

-- `aput_writes` in one round trip: pending writes of a task, fenced like checkpoints.
-- `p_upsert`: replace writes of the same index (LangGraph's special channels: errors,
-- interrupts); otherwise the first write of an index stays. `p_show`: the run stops here
-- (an error or an interrupt), so the transcript shows what waits in `pending`. Returns
-- the conversation row and whether this call created it.
DROP FUNCTION IF EXISTS vera_put_writes(UUID, TEXT, TEXT, TEXT, TEXT, INTEGER[], TEXT[],
    TEXT[], BYTEA[], BOOLEAN, UUID);
CREATE OR REPLACE FUNCTION vera_put_writes(
    p_session UUID, p_ns TEXT, p_checkpoint_id TEXT, p_task_id TEXT, p_task_path TEXT,
    p_idxs INTEGER[], p_channels TEXT[], p_types TEXT[], p_blobs BYTEA[], p_upsert BOOLEAN,
    p_lease UUID, p_show BOOLEAN
) RETURNS TABLE (row_id UUID, created BOOLEAN)
LANGUAGE plpgsql AS $$
DECLARE
    v_row UUID;
    v_created BOOLEAN;
BEGIN
    SELECT r.row_id, r.created INTO v_row, v_created
    FROM vera_conversation_row(p_session, false) AS r;
    PERFORM vera_check_writer(p_session, p_lease);
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
    IF p_show THEN
        PERFORM vera_show_latest(p_session);
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
        pending = '{}', version = latest.checkpoint -> 'channel_versions' ->> p_channel
    WHERE session_id = p_session;
END
$$;
