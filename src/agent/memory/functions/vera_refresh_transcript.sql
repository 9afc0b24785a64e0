-- Show the session's latest remaining root checkpoint (after checkpoints were deleted).
CREATE OR REPLACE FUNCTION vera_refresh_transcript(p_session_id UUID, p_transcript_channel TEXT)
RETURNS VOID LANGUAGE plpgsql AS $$
DECLARE
    v_latest RECORD;
    v_head transcript_heads;
    v_next transcript_heads;
BEGIN
    PERFORM 1 FROM conversations c WHERE c.session_id = p_session_id FOR NO KEY UPDATE;
    IF NOT FOUND THEN  -- deleted meanwhile: nothing to show
        RETURN;
    END IF;
    INSERT INTO transcript_heads (session_id) VALUES (p_session_id) ON CONFLICT DO NOTHING;
    SELECT * INTO v_head FROM transcript_heads h WHERE h.session_id = p_session_id;
    SELECT k.checkpoint_id, k.checkpoint INTO v_latest FROM checkpoints k
    WHERE k.session_id = p_session_id AND k.checkpoint_ns = ''
    ORDER BY k.checkpoint_id DESC LIMIT 1;
    v_next := v_head;
    v_next.checkpoint_id := v_latest.checkpoint_id;
    v_next.seqs := COALESCE(
        vera_checkpoint_seqs(p_session_id, v_latest.checkpoint, p_transcript_channel), '{}');
    v_next.waiting := '{}';
    v_next.version := v_latest.checkpoint -> 'channel_versions' ->> p_transcript_channel;
    PERFORM vera_move_head(v_head, v_next, p_new_messages => NULL);
END
$$;
