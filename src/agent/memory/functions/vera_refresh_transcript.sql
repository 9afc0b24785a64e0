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
