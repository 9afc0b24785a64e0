-- What the transcript gains when `p_seqs` are what it shows followed by messages at hand:
-- new ones (`p_new_messages`, seqs from `p_head.next_seq` on) or waiting in
-- `conversation_messages`; their elements in order. NULL when `p_seqs` is not such an
-- append (the transcript must be rebuilt). Changes nothing: `vera_move_head` appends.
CREATE OR REPLACE FUNCTION vera_appended_elements(
    p_head transcript_heads, p_seqs INTEGER[], p_new_messages JSONB
) RETURNS JSONB LANGUAGE plpgsql AS $$
DECLARE
    v_shown INTEGER := cardinality(p_head.seqs);
    v_elements JSONB;
    v_missing INTEGER;
BEGIN
    IF cardinality(p_seqs) <= v_shown OR p_seqs[1:v_shown] <> p_head.seqs THEN
        RETURN NULL;
    END IF;
    SELECT jsonb_agg(COALESCE(n.element, m.element) ORDER BY v.ord),
        count(*) FILTER (WHERE n.element IS NULL AND m.element IS NULL)
    INTO v_elements, v_missing
    FROM unnest(p_seqs[v_shown + 1:]) WITH ORDINALITY AS v(seq, ord)
    LEFT JOIN vera_numbered_messages(p_new_messages, p_head.next_seq) AS n ON n.seq = v.seq
    LEFT JOIN conversation_messages m ON m.session_id = p_head.session_id AND m.seq = v.seq;
    RETURN CASE WHEN v_missing = 0 THEN v_elements END;  -- else a seq it already shows
END
$$;
