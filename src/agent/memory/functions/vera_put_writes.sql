-- `aput_writes` in one round trip: a task's pending writes, fenced like checkpoints (the
-- same check as `vera_put_checkpoint`'s, written out in both: issue 28). `p_replace`: they replace earlier writes of the same index
-- (LangGraph's special channels: errors, interrupts), else the first write of an index
-- stays. `p_run_stops`: the run stops here (an error or an interrupt), so the transcript
-- shows what waits for the run's end. Returns the conversation's id and whether this call
-- created its row. Its settings hold for the functions it calls (`__init__.py` says why).
CREATE OR REPLACE FUNCTION vera_put_writes(
    p_session_id UUID, p_checkpoint_ns TEXT, p_checkpoint_id TEXT, p_task_id TEXT,
    p_task_path TEXT, p_idxs INTEGER[], p_channels TEXT[], p_types TEXT[], p_blobs BYTEA[],
    p_replace BOOLEAN, p_lease UUID, p_run_stops BOOLEAN,
    OUT conversation_id UUID, OUT created BOOLEAN
) LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan SET enable_seqscan = off AS $$
DECLARE
    v_conversation RECORD;
BEGIN
    SELECT c.id INTO conversation_id FROM conversations c WHERE c.session_id = p_session_id
    FOR KEY SHARE;
    created := NOT FOUND;
    IF created THEN  -- these writes come first: create the conversation
        v_conversation := vera_ensure_conversation(p_session_id, p_lock => false);
        conversation_id := v_conversation.conversation_id;
        created := v_conversation.created;
    END IF;
    -- Fencing (`fencing.py`): a write under a lease is refused (VR001) unless that lease is
    -- still the session's, its row locked FOR SHARE until commit; one without a lease is
    -- refused (VR002) while a run holds an unexpired lease of the session.
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
    INSERT INTO checkpoint_writes AS w (session_id, checkpoint_ns, checkpoint_id, task_id,
        task_path, idx, channel, type, blob)
    SELECT p_session_id, p_checkpoint_ns, p_checkpoint_id, p_task_id, p_task_path, u.idx,
        u.channel, u.type, u.blob
    FROM unnest(p_idxs, p_channels, p_types, p_blobs) AS u(idx, channel, type, blob)
    ON CONFLICT (session_id, checkpoint_ns, checkpoint_id, task_id, idx)
    DO UPDATE SET channel = EXCLUDED.channel, type = EXCLUDED.type, blob = EXCLUDED.blob
    WHERE p_replace;
    IF p_run_stops THEN
        PERFORM vera_show_waiting(p_session_id);
    END IF;
END
$$;
