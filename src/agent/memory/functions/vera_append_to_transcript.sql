-- Show `p_seqs` by appending to the transcript, when they are what it shows followed by
-- messages at hand: new ones (`p_new_messages`, seqs from `p_head.next_seq` on) or waiting
-- in `conversation_messages` (which they then leave). Else false, nothing changed.
CREATE OR REPLACE FUNCTION vera_append_to_transcript(
    p_head transcript_heads, p_seqs INTEGER[], p_new_messages JSONB
) RETURNS BOOLEAN LANGUAGE plpgsql AS $$
DECLARE
    v_shown INTEGER := cardinality(p_head.seqs);
    v_tail INTEGER[];
    v_elements JSONB;
    v_missing INTEGER;
    v_waiting INTEGER;
BEGIN
    IF cardinality(p_seqs) <= v_shown OR p_seqs[1:v_shown] <> p_head.seqs THEN
        RETURN false;
    END IF;
    v_tail := p_seqs[v_shown + 1:];
    SELECT jsonb_agg(COALESCE(n.element, m.element) ORDER BY v.ord),
        count(*) FILTER (WHERE n.element IS NULL AND m.element IS NULL),
        count(*) FILTER (WHERE n.element IS NULL AND m.element IS NOT NULL)
    INTO v_elements, v_missing, v_waiting
    FROM unnest(v_tail) WITH ORDINALITY AS v(seq, ord)
    LEFT JOIN vera_numbered_messages(p_new_messages, p_head.next_seq) AS n ON n.seq = v.seq
    LEFT JOIN conversation_messages m ON m.session_id = p_head.session_id AND m.seq = v.seq;
    IF v_missing > 0 THEN  -- a seq the transcript already shows: not an append
        RETURN false;
    END IF;
    UPDATE conversations
    SET messages = COALESCE(messages, '[]'::jsonb) || v_elements, updated_at = NOW()
    WHERE session_id = p_head.session_id;
    IF v_waiting > 0 THEN
        DELETE FROM conversation_messages m
        WHERE m.session_id = p_head.session_id AND m.seq = ANY (v_tail);
    END IF;
    RETURN true;
END
$$;
