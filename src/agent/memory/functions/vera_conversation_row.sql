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
