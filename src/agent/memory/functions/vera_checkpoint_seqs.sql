-- The seqs of a stored root checkpoint's transcript: '{}' when it has none (no checkpoint,
-- the channel absent or empty), NULL when the channel holds something other than a message
-- list (the transcript then stays as it is).
CREATE OR REPLACE FUNCTION vera_checkpoint_seqs(
    p_session_id UUID, p_checkpoint JSONB, p_transcript_channel TEXT
) RETURNS INTEGER[] LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_type TEXT;
    v_ranges BYTEA;
BEGIN
    IF p_checkpoint IS NULL OR NOT (p_checkpoint -> 'channel_versions' ? p_transcript_channel) THEN
        RETURN '{}';
    END IF;
    SELECT b.type, b.blob INTO v_type, v_ranges FROM checkpoint_blobs b
    WHERE b.session_id = p_session_id AND b.checkpoint_ns = ''
        AND b.channel = p_transcript_channel
        AND b.version = p_checkpoint -> 'channel_versions' ->> p_transcript_channel;
    IF v_type = 'vera.transcript_ranges' THEN
        RETURN vera_ranges_seqs(v_ranges);
    ELSIF v_type = 'empty' THEN
        RETURN '{}';
    END IF;
    RETURN NULL;
END
$$;
