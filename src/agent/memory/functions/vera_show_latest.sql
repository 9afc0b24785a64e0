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
