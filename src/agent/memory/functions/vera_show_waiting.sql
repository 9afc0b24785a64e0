-- Show the messages waiting for the end of their run now: the run stopped (an error or an
-- interrupt was written).
CREATE OR REPLACE FUNCTION vera_show_waiting(p_session_id UUID) RETURNS VOID
LANGUAGE plpgsql AS $$
DECLARE
    v_head transcript_heads;
    v_next transcript_heads;
BEGIN
    PERFORM 1 FROM vera_ensure_conversation(p_session_id, p_lock => true);
    SELECT * INTO v_head FROM transcript_heads h WHERE h.session_id = p_session_id;
    IF NOT FOUND OR cardinality(v_head.waiting) = 0 THEN
        RETURN;
    END IF;
    v_next := v_head;
    v_next.seqs := vera_transcript_seqs(v_head);
    v_next.waiting := '{}';
    PERFORM vera_move_head(v_head, v_next, p_new_messages => NULL);
END
$$;
