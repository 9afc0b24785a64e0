-- The session's stored messages from seq `p_from` on, in seq order, wherever they live (one
-- statement: one snapshot of the transcript, its head and `conversation_messages`).
CREATE OR REPLACE FUNCTION vera_messages_from(p_session_id UUID, p_from INTEGER) RETURNS JSONB
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN (SELECT jsonb_agg(x.element ORDER BY x.seq) FROM (
        SELECT DISTINCT ON (seq) seq, element FROM (
            SELECT m.seq, m.element FROM conversation_messages m
            WHERE m.session_id = p_session_id AND m.seq >= p_from
            UNION ALL
            SELECT o.seq, o.element
            FROM transcript_heads h JOIN conversations c ON c.session_id = h.session_id,
                vera_shown_messages(h.seqs, c.messages) AS o
            WHERE h.session_id = p_session_id AND o.seq >= p_from
        ) AS found ORDER BY seq) AS x);
END
$$;
