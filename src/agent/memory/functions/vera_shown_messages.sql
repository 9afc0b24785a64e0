-- The elements of a transcript (`p_messages`, `conversations.messages`) with the seqs it
-- shows them at (`p_seqs`, the head's), each seq once.
CREATE OR REPLACE FUNCTION vera_shown_messages(p_seqs INTEGER[], p_messages JSONB)
RETURNS TABLE (seq INTEGER, element JSONB) LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT DISTINCT ON (u.seq) u.seq, t.e
    FROM unnest(p_seqs) WITH ORDINALITY AS u(seq, i)
    JOIN jsonb_array_elements(COALESCE(p_messages, '[]'::jsonb)) WITH ORDINALITY AS t(e, j)
        ON u.i = t.j
$$;
