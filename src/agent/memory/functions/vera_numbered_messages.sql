-- New messages (a JSON array of elements) with their seqs: `p_first_seq`, the next, ...
CREATE OR REPLACE FUNCTION vera_numbered_messages(p_messages JSONB, p_first_seq INTEGER)
RETURNS TABLE (seq INTEGER, element JSONB) LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT p_first_seq + (x.i - 1)::int, x.e
    FROM jsonb_array_elements(COALESCE(p_messages, '[]'::jsonb)) WITH ORDINALITY AS x(e, i)
$$;
