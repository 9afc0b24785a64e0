-- Take the session for one write and check the writer may make it: the conversation row,
-- locked until commit (writers of one session take turns on it, so each sees what the one
-- before committed), then its transcript head, read once the lock is ours (a join in the
-- locking statement would read the head as it was before a wait for the lock), both
-- created when missing; the writer's lease (`vera_check_writer`); and, when the caller
-- says the run continues from its own last checkpoint (`p_run_parent`), that this
-- checkpoint is still the latest: else another writer continued the thread since, and
-- storing would fork it and hide that writer's messages (VR003).
CREATE OR REPLACE FUNCTION vera_take_session(
    p_session_id UUID, p_lease UUID, p_run_parent TEXT,
    OUT conversation_id UUID, OUT head transcript_heads
) LANGUAGE plpgsql AS $$
BEGIN
    SELECT c.id INTO conversation_id FROM conversations c
    WHERE c.session_id = p_session_id FOR NO KEY UPDATE;
    IF NOT FOUND THEN  -- a new conversation
        conversation_id := (vera_ensure_conversation(p_session_id, p_lock => true)).conversation_id;
    END IF;
    SELECT * INTO head FROM transcript_heads h WHERE h.session_id = p_session_id;
    IF NOT FOUND THEN  -- new, or a conversation its pending writes created
        INSERT INTO transcript_heads (session_id) VALUES (p_session_id) RETURNING * INTO head;
    END IF;
    PERFORM vera_check_writer(p_session_id, p_lease);
    IF p_run_parent IS NOT NULL AND head.checkpoint_id IS DISTINCT FROM p_run_parent THEN
        RAISE EXCEPTION
            'session %: another writer continued the thread after checkpoint %; this run is stale',
            p_session_id, p_run_parent USING ERRCODE = 'VR003';
    END IF;
END
$$;
