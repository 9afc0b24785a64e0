-- `aput_writes` in one round trip: pending writes of a task, fenced like checkpoints.
-- `p_upsert`: replace writes of the same index (LangGraph's special channels: errors,
-- interrupts); otherwise the first write of an index stays. `p_show`: the run stops here
-- (an error or an interrupt), so the transcript shows what waits in `pending`. Returns
-- the conversation row and whether this call created it.
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
