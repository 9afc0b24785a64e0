-- Make the transcript show `p_seqs`, whatever it showed: messages leaving it move to
-- `conversation_messages`, those coming back (or that waited) leave it. The elements come
-- from `p_new_messages` (seqs from `p_head.next_seq` on), from the transcript itself or
-- from `conversation_messages`.
CREATE OR REPLACE FUNCTION vera_rebuild_transcript(
    p_head transcript_heads, p_seqs INTEGER[], p_new_messages JSONB
) RETURNS VOID LANGUAGE plpgsql AS $$
DECLARE
    v_old JSONB;
    v_result JSONB;
    v_missing INTEGER;
BEGIN
    SELECT c.messages INTO v_old FROM conversations c WHERE c.session_id = p_head.session_id;
    INSERT INTO conversation_messages (session_id, seq, element)
    SELECT p_head.session_id, o.seq, o.element FROM vera_shown_messages(p_head.seqs, v_old) AS o
    WHERE o.seq <> ALL (p_seqs)
    ON CONFLICT DO NOTHING;
    SELECT COALESCE(jsonb_agg(COALESCE(n.element, o.element, m.element) ORDER BY v.ord),
            '[]'::jsonb),
        count(*) FILTER (WHERE COALESCE(n.element, o.element, m.element) IS NULL)
    INTO v_result, v_missing
    FROM unnest(p_seqs) WITH ORDINALITY AS v(seq, ord)
    LEFT JOIN vera_numbered_messages(p_new_messages, p_head.next_seq) AS n ON n.seq = v.seq
    LEFT JOIN vera_shown_messages(p_head.seqs, v_old) AS o ON o.seq = v.seq
    LEFT JOIN conversation_messages m ON m.session_id = p_head.session_id AND m.seq = v.seq;
    IF v_missing > 0 THEN
        RAISE EXCEPTION 'session %: % of the messages to show are stored nowhere',
            p_head.session_id, v_missing;
    END IF;
    UPDATE conversations SET messages = v_result, updated_at = NOW()
    WHERE session_id = p_head.session_id;
    DELETE FROM conversation_messages m
    WHERE m.session_id = p_head.session_id AND m.seq = ANY (p_seqs);
END
$$;
