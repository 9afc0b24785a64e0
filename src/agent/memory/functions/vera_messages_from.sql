-- The session's messages from seq `p_from` on, in seq order, wherever they live (one
-- statement: one snapshot of the transcript, its head and the other branches' messages).
CREATE OR REPLACE FUNCTION vera_messages_from(p_session UUID, p_from INTEGER) RETURNS JSONB
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN (SELECT jsonb_agg(x.e ORDER BY x.seq) FROM (
        SELECT DISTINCT ON (seq) seq, e FROM (
            SELECT m.seq, m.element AS e FROM conversation_messages m
            WHERE m.session_id = p_session AND m.seq >= p_from
            UNION ALL
            SELECT u.seq, t.e
            FROM transcript_heads h JOIN conversations c ON c.session_id = h.session_id,
                unnest(h.seqs) WITH ORDINALITY AS u(seq, i),
                jsonb_array_elements(c.messages) WITH ORDINALITY AS t(e, j)
            WHERE h.session_id = p_session AND u.i = t.j AND u.seq >= p_from
        ) AS found ORDER BY seq) AS x);
END
$$;
