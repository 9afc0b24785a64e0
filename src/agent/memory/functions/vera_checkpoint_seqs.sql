-- The seqs of a root checkpoint's transcript channel `p_channel` (NULL: whichever channel
-- holds ranges): '{}' when the channel is absent or empty, NULL when it holds something
-- other than a message list (the transcript then stays as it is).
CREATE OR REPLACE FUNCTION vera_checkpoint_seqs(
    p_session UUID, p_checkpoint JSONB, p_channel TEXT
) RETURNS INTEGER[] LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_type TEXT;
    v_blob BYTEA;
BEGIN
    IF p_channel IS NOT NULL AND NOT (p_checkpoint -> 'channel_versions' ? p_channel) THEN
        RETURN '{}';
    END IF;
    SELECT b.type, b.blob INTO v_type, v_blob
    FROM jsonb_each_text(p_checkpoint -> 'channel_versions') AS v(channel, version)
    JOIN checkpoint_blobs b ON b.session_id = p_session AND b.checkpoint_ns = ''
        AND b.channel = v.channel AND b.version = v.version
    WHERE (p_channel IS NULL AND b.type = 'vera.transcript_ranges') OR v.channel = p_channel
    LIMIT 1;
    IF v_type = 'vera.transcript_ranges' THEN
        RETURN vera_blob_seqs(v_blob);
    ELSIF v_type = 'empty' OR (v_type IS NULL AND p_channel IS NULL) THEN
        RETURN '{}';
    END IF;
    RETURN NULL;
END
$$;
