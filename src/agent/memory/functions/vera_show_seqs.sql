-- Make the transcript show `p_seqs` (the caller holds the session's conversations row
-- lock). The elements come from `p_new` (new messages, seqs `p_new_from`, ...), from the
-- transcript itself or from `conversation_messages`; messages leaving the transcript move
-- to `conversation_messages`, and those coming back leave it. A branch that only grows is
-- appended to (its new and waiting messages), without reading the transcript back.
CREATE OR REPLACE FUNCTION vera_show_seqs(
    p_session UUID, p_shown INTEGER[], p_seqs INTEGER[], p_new JSONB, p_new_from INTEGER
) RETURNS VOID LANGUAGE plpgsql AS $$
DECLARE
    v_count INTEGER := cardinality(p_shown);
    v_tail INTEGER[];
    v_old JSONB;
    v_result JSONB;
    v_missing INTEGER;
    v_waiting INTEGER;
BEGIN
    IF p_seqs = p_shown THEN
        RETURN;
    END IF;
    IF cardinality(p_seqs) > v_count AND p_seqs[1:v_count] = p_shown THEN
        v_tail := p_seqs[v_count + 1:];
        SELECT jsonb_agg(COALESCE(n.e, m.element) ORDER BY v.ord),
            count(*) FILTER (WHERE n.e IS NULL AND m.element IS NULL),
            count(*) FILTER (WHERE n.e IS NULL AND m.element IS NOT NULL)
        INTO v_result, v_missing, v_waiting
        FROM unnest(v_tail) WITH ORDINALITY AS v(seq, ord)
        LEFT JOIN (SELECT p_new_from + (x.i - 1)::int AS seq, x.e
                   FROM jsonb_array_elements(COALESCE(p_new, '[]'::jsonb)) WITH ORDINALITY
                       AS x(e, i)) AS n ON n.seq = v.seq
        LEFT JOIN conversation_messages m ON m.session_id = p_session AND m.seq = v.seq;
        IF v_missing = 0 THEN  -- else a seq the transcript already shows: the slow way
            UPDATE conversations
            SET messages = COALESCE(messages, '[]'::jsonb) || v_result, updated_at = NOW()
            WHERE session_id = p_session;
            IF v_waiting > 0 THEN
                DELETE FROM conversation_messages m
                WHERE m.session_id = p_session AND m.seq = ANY (v_tail);
            END IF;
            RETURN;
        END IF;
    END IF;
    SELECT c.messages INTO v_old FROM conversations c WHERE c.session_id = p_session;
    INSERT INTO conversation_messages (session_id, seq, element)
    SELECT DISTINCT ON (u.seq) p_session, u.seq, t.e
    FROM unnest(p_shown) WITH ORDINALITY AS u(seq, i)
    JOIN jsonb_array_elements(COALESCE(v_old, '[]'::jsonb)) WITH ORDINALITY AS t(e, j)
        ON u.i = t.j
    WHERE u.seq <> ALL (p_seqs)
    ON CONFLICT DO NOTHING;
    SELECT COALESCE(jsonb_agg(COALESCE(n.e, o.e, m.element) ORDER BY v.ord), '[]'::jsonb),
        count(*) FILTER (WHERE COALESCE(n.e, o.e, m.element) IS NULL)
    INTO v_result, v_missing
    FROM unnest(p_seqs) WITH ORDINALITY AS v(seq, ord)
    LEFT JOIN (SELECT p_new_from + (x.i - 1)::int AS seq, x.e
               FROM jsonb_array_elements(COALESCE(p_new, '[]'::jsonb)) WITH ORDINALITY
                   AS x(e, i)) AS n ON n.seq = v.seq
    LEFT JOIN (SELECT DISTINCT ON (u.seq) u.seq, t.e
               FROM unnest(p_shown) WITH ORDINALITY AS u(seq, i)
               JOIN jsonb_array_elements(COALESCE(v_old, '[]'::jsonb)) WITH ORDINALITY
                   AS t(e, j) ON u.i = t.j) AS o ON o.seq = v.seq
    LEFT JOIN conversation_messages m ON m.session_id = p_session AND m.seq = v.seq;
    IF v_missing > 0 THEN
        RAISE EXCEPTION 'session %: % of the messages to show are stored nowhere',
            p_session, v_missing;
    END IF;
    UPDATE conversations SET messages = v_result, updated_at = NOW()
    WHERE session_id = p_session;
    -- Messages of another branch that are shown again live in the transcript only.
    DELETE FROM conversation_messages m WHERE m.session_id = p_session AND m.seq = ANY (p_seqs);
END
$$;
