-- The transcript head moves from `p_head` to `p_next` (`vera_put_checkpoint` makes the two
-- common moves, storing waiting messages and the append, the same way in place, and calls
-- this for any other; `vera_show_waiting` and `vera_refresh_transcript` call it). The
-- transcript shows `p_next.seqs` (appended to when it only grows by messages at hand, else rebuilt), and
-- the head row becomes `p_next` in one statement with the append (the messages it shows
-- now leave `conversation_messages`) or with storing the new messages it does not show in
-- `conversation_messages` (they wait for their run's end, or belong to another branch).
-- `p_new_messages` take the seqs from `p_head.next_seq` on. The caller holds the
-- conversation row's lock.
CREATE OR REPLACE FUNCTION vera_move_head(
    p_head transcript_heads, p_next transcript_heads, p_new_messages JSONB
) RETURNS VOID LANGUAGE plpgsql AS $$
DECLARE
    v_shows BOOLEAN := p_next.seqs IS DISTINCT FROM p_head.seqs;
    v_appended JSONB;  -- what the transcript gains, when it only grows
BEGIN
    IF v_shows THEN
        v_appended := vera_appended_elements(p_head, p_next.seqs, p_new_messages);
        IF v_appended IS NULL THEN
            PERFORM vera_rebuild_transcript(p_head, p_next.seqs, p_new_messages);
        END IF;
    END IF;
    IF v_appended IS NOT NULL THEN  -- the head moves with the append: one statement
        WITH shown AS (
            UPDATE conversations c
            SET messages = COALESCE(c.messages, '[]'::jsonb) || v_appended, updated_at = NOW()
            WHERE c.session_id = p_head.session_id
        ), no_longer_waiting AS (
            DELETE FROM conversation_messages m
            WHERE m.session_id = p_head.session_id
                AND m.seq = ANY (p_next.seqs[cardinality(p_head.seqs) + 1:])
        )
        UPDATE transcript_heads h
        SET (checkpoint_id, seqs, waiting, version, next_seq) = (p_next.checkpoint_id,
            p_next.seqs, p_next.waiting, p_next.version, p_next.next_seq)
        WHERE h.session_id = p_head.session_id;
        RETURN;
    END IF;
    WITH stored AS (
        INSERT INTO conversation_messages (session_id, seq, element)
        SELECT p_head.session_id, n.seq, n.element
        FROM vera_numbered_messages(CASE WHEN NOT v_shows THEN p_new_messages END,
            p_head.next_seq) AS n
    )
    UPDATE transcript_heads h
    SET (checkpoint_id, seqs, waiting, version, next_seq) = (p_next.checkpoint_id,
        p_next.seqs, p_next.waiting, p_next.version, p_next.next_seq)
    WHERE h.session_id = p_head.session_id;
END
$$;
