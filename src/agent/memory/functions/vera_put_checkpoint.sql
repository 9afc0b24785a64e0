-- `aput` in one round trip (`put.py`), in steps: take the session, check the writer and
-- the plan, store the checkpoint's rows, decide where the transcript's head goes, move it.
-- The steps are written out here, not called (issue 28: a nested PL/pgSQL call, with its
-- composite arguments, cost more than most of the statements it ran).
--
-- The checkpoint's transcript was planned (`TranscriptPlan`) from the saver's cached copy
-- of the message log of conversation `p_conversation_id`, believed to hold seqs
-- [0, p_next_seq): `p_seqs` are the transcript's messages, `p_new_messages` those not
-- stored yet (seqs `p_next_seq`, ...). A plan made from a stale copy (another writer since)
-- stores nothing and answers `stored` false: the caller catches its copy up under the row
-- lock and calls again. No plan (`p_seqs` NULL): the transcript channel did not change, or
-- is not a message list.
--
-- Its settings hold for the functions it calls (`__init__.py` says why).
CREATE OR REPLACE FUNCTION vera_put_checkpoint(
    p_session_id UUID, p_checkpoint_ns TEXT, p_checkpoint_id TEXT,
    p_parent_checkpoint_id TEXT, p_thread_id TEXT, p_checkpoint JSONB, p_metadata JSONB,
    p_channels TEXT[], p_versions TEXT[], p_types TEXT[], p_blobs BYTEA[],
    p_transcript_channel TEXT, p_seqs INTEGER[], p_new_messages JSONB, p_next_seq INTEGER,
    p_conversation_id UUID, p_lease UUID, p_run_parent TEXT, p_run_goes_on BOOLEAN,
    OUT conversation_id UUID, OUT stored BOOLEAN
) LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan SET enable_seqscan = off AS $$
DECLARE
    v_head transcript_heads;  -- the head as this write finds it
    v_shown INTEGER;  -- how many messages the transcript shows
    v_seqs INTEGER[];  -- the checkpoint's transcript
    v_next transcript_heads;  -- where the head goes
    v_waits BOOLEAN;
    v_appended JSONB;  -- what the transcript gains, when it only grows
    v_missing INTEGER;
BEGIN
    -- Take the session: its conversation row, locked until commit (writers of one session
    -- take turns on it, so each sees what the one before committed), created when missing.
    SELECT c.id INTO conversation_id FROM conversations c
    WHERE c.session_id = p_session_id FOR NO KEY UPDATE;
    IF NOT FOUND THEN  -- a new conversation
        conversation_id := (vera_ensure_conversation(p_session_id, p_lock => true)).conversation_id;
    END IF;
    -- Its transcript head, read once the lock is ours (a join in the locking statement would
    -- read the head as it was before a wait for the lock), created when missing.
    SELECT * INTO v_head FROM transcript_heads h WHERE h.session_id = p_session_id;
    IF NOT FOUND THEN  -- new, or a conversation its pending writes created
        INSERT INTO transcript_heads (session_id) VALUES (p_session_id) RETURNING * INTO v_head;
    END IF;
    -- Fencing (`fencing.py`): a write made under a lease names it (`p_lease`: the run id of
    -- `turn_leases`) and is refused (VR001) unless that lease is still the session's; its
    -- row stays locked FOR SHARE until the write commits, so no other run can take the
    -- session over between the check and the write. A write without a lease (LangGraph
    -- Studio, a script) is refused (VR002) while a run holds an unexpired lease of the
    -- session, instead of forking the conversation under it. `vera_put_writes` checks alike.
    IF p_lease IS NOT NULL THEN
        PERFORM 1 FROM turn_leases l WHERE l.session_id = p_session_id AND l.run_id = p_lease
        FOR SHARE;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'session %: lease % is no longer held', p_session_id, p_lease
                USING ERRCODE = 'VR001';
        END IF;
    ELSE
        PERFORM 1 FROM turn_leases l
        WHERE l.session_id = p_session_id AND l.expires_at > clock_timestamp();
        IF FOUND THEN
            RAISE EXCEPTION 'session %: a turn holds its lease; write again when it ends',
                p_session_id USING ERRCODE = 'VR002';
        END IF;
    END IF;
    -- The caller says the run continues from its own last checkpoint (`p_run_parent`): it
    -- must still be the latest, else another writer continued the thread since, and storing
    -- would fork it and hide that writer's messages (VR003).
    IF p_run_parent IS NOT NULL AND v_head.checkpoint_id IS DISTINCT FROM p_run_parent THEN
        RAISE EXCEPTION
            'session %: another writer continued the thread after checkpoint %; this run is stale',
            p_session_id, p_run_parent USING ERRCODE = 'VR003';
    END IF;
    -- The plan: made from a copy of this conversation's log that held every seq handed out.
    stored := NOT ((p_next_seq > 0 AND conversation_id IS DISTINCT FROM p_conversation_id)
        OR (p_new_messages IS NOT NULL AND v_head.next_seq <> p_next_seq));
    IF NOT stored THEN
        RETURN;
    END IF;

    -- Store the rows, in one statement: the new channel values (a version already stored is
    -- kept) and the checkpoint (stored again, its body and metadata replace the old ones).
    WITH channel_values AS (
        INSERT INTO checkpoint_blobs (session_id, checkpoint_ns, channel, version, type, blob)
        SELECT p_session_id, p_checkpoint_ns, u.channel, u.version, u.type, u.blob
        FROM unnest(p_channels, p_versions, p_types, p_blobs) AS u(channel, version, type, blob)
        ON CONFLICT (session_id, checkpoint_ns, channel, version) DO NOTHING
    )
    INSERT INTO checkpoints (session_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id,
        thread_id, checkpoint, metadata)
    VALUES (p_session_id, p_checkpoint_ns, p_checkpoint_id, p_parent_checkpoint_id,
        p_thread_id, p_checkpoint, p_metadata)
    ON CONFLICT (session_id, checkpoint_ns, checkpoint_id)
    DO UPDATE SET checkpoint = EXCLUDED.checkpoint, metadata = EXCLUDED.metadata;

    -- Where the head goes. New messages take the seqs from the head's `next_seq` on.
    v_next := v_head;
    v_next.next_seq := v_head.next_seq + COALESCE(jsonb_array_length(p_new_messages), 0);
    v_shown := cardinality(v_head.seqs);
    IF p_checkpoint_ns = ''
        AND (v_head.checkpoint_id IS NULL OR p_checkpoint_id >= v_head.checkpoint_id) THEN
        -- Only the session's latest root checkpoint moves what the transcript is: its
        -- messages (`p_seqs`, else the head's when the channel's version did not change,
        -- else the stored checkpoint's) are shown now, or wait for the end of the run.
        v_next.checkpoint_id := p_checkpoint_id;
        v_next.version := p_checkpoint -> 'channel_versions' ->> p_transcript_channel;
        IF p_seqs IS NOT NULL THEN
            v_seqs := p_seqs;
        ELSIF v_next.version IS NOT DISTINCT FROM v_head.version THEN
            v_seqs := vera_transcript_seqs(v_head);
        ELSE
            v_seqs := vera_checkpoint_seqs(p_session_id, p_checkpoint, p_transcript_channel);
        END IF;
        -- The run goes on and this checkpoint only adds messages: they wait for its end,
        -- unless the run already stopped here (LangGraph stores a step's writes and the
        -- checkpoint before it concurrently: an error or an interrupt may come first).
        v_waits := p_run_goes_on AND v_seqs[1:v_shown] = v_head.seqs
            AND NOT (v_seqs[v_shown + 1:] && v_head.seqs);
        IF v_waits THEN
            v_waits := NOT EXISTS (SELECT FROM checkpoint_writes w
                WHERE w.session_id = p_session_id AND w.checkpoint_ns = ''
                    AND w.checkpoint_id = p_checkpoint_id
                    AND w.channel IN ('__error__', '__interrupt__'));
        END IF;
        IF v_waits THEN
            v_next.waiting := v_seqs[v_shown + 1:];
        ELSIF v_seqs IS NOT NULL THEN
            v_next.seqs := v_seqs;
            v_next.waiting := '{}';
        END IF;  -- v_seqs NULL: not a message list, the transcript stays as it is
    ELSIF p_new_messages IS NULL THEN
        RETURN;  -- not the latest, and nothing new: the head stays
    END IF;  -- not the latest: its new messages belong to another branch

    -- Move the head (as `vera_move_head`, which the other movers call, does). The transcript
    -- shows what it showed: the new messages it does not show are stored in
    -- `conversation_messages` (they wait for their run's end, or belong to another branch),
    -- in one statement with the head row's update.
    IF v_next.seqs IS NOT DISTINCT FROM v_head.seqs THEN
        WITH waiting AS (
            INSERT INTO conversation_messages (session_id, seq, element)
            SELECT p_session_id, n.seq, n.element
            FROM vera_numbered_messages(p_new_messages, v_head.next_seq) AS n
        )
        UPDATE transcript_heads h
        SET (checkpoint_id, seqs, waiting, version, next_seq) = (v_next.checkpoint_id,
            v_next.seqs, v_next.waiting, v_next.version, v_next.next_seq)
        WHERE h.session_id = p_session_id;
        RETURN;
    END IF;
    -- It grows by messages at hand (new, or waiting in `conversation_messages`): the append,
    -- the messages no longer waiting and the head row in one statement.
    IF cardinality(v_next.seqs) > v_shown AND v_next.seqs[1:v_shown] = v_head.seqs THEN
        SELECT jsonb_agg(COALESCE(n.element, m.element) ORDER BY v.ord),
            count(*) FILTER (WHERE n.element IS NULL AND m.element IS NULL)
        INTO v_appended, v_missing
        FROM unnest(v_next.seqs[v_shown + 1:]) WITH ORDINALITY AS v(seq, ord)
        LEFT JOIN vera_numbered_messages(p_new_messages, v_head.next_seq) AS n ON n.seq = v.seq
        LEFT JOIN conversation_messages m ON m.session_id = p_session_id AND m.seq = v.seq;
        IF v_missing = 0 THEN  -- else a seq it already shows: rebuilt below
            WITH shown AS (
                UPDATE conversations c
                SET messages = COALESCE(c.messages, '[]'::jsonb) || v_appended,
                    updated_at = NOW()
                WHERE c.session_id = p_session_id
            ), no_longer_waiting AS (
                DELETE FROM conversation_messages m
                WHERE m.session_id = p_session_id AND m.seq = ANY (v_next.seqs[v_shown + 1:])
            )
            UPDATE transcript_heads h
            SET (checkpoint_id, seqs, waiting, version, next_seq) = (v_next.checkpoint_id,
                v_next.seqs, v_next.waiting, v_next.version, v_next.next_seq)
            WHERE h.session_id = p_session_id;
            RETURN;
        END IF;
    END IF;
    PERFORM vera_move_head(v_head, v_next, p_new_messages);  -- any other change: a rebuild
END
$$;
