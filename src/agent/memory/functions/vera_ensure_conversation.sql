-- The session's conversation row's id, the row created when missing (`created`), locked
-- until commit. With `p_lock` FOR NO KEY UPDATE (what an UPDATE of `messages` takes
-- anyway), which is how writers of one session take turns; it leaves the FOR KEY SHARE of
-- concurrent inserts (a step's pending writes, stored while its checkpoint is) free to go
-- on, where FOR UPDATE made them wait for each other. Without, FOR KEY SHARE: enough to
-- keep the row from being deleted before the caller's rows are (migration 10's protocol).
CREATE OR REPLACE FUNCTION vera_ensure_conversation(
    p_session_id UUID, p_lock BOOLEAN, OUT conversation_id UUID, OUT created BOOLEAN
) LANGUAGE plpgsql AS $$
BEGIN
    created := false;
    LOOP
        IF p_lock THEN
            SELECT c.id INTO conversation_id FROM conversations c
            WHERE c.session_id = p_session_id FOR NO KEY UPDATE;
        ELSE
            SELECT c.id INTO conversation_id FROM conversations c
            WHERE c.session_id = p_session_id FOR KEY SHARE;
        END IF;
        IF FOUND THEN
            RETURN;
        END IF;
        INSERT INTO conversations (session_id) VALUES (p_session_id) ON CONFLICT DO NOTHING
        RETURNING id INTO conversation_id;
        IF conversation_id IS NOT NULL THEN  -- ours, and locked by the insert till commit
            created := true;
            RETURN;
        END IF;  -- inserted by a concurrent writer meanwhile: read it again
    END LOOP;
END
$$;
