-- The seqs a transcript's ranges blob lists (`[[start, end), ...]` as JSON: `seq_ranges.py`),
-- in order.
CREATE OR REPLACE FUNCTION vera_ranges_seqs(p_ranges BYTEA) RETURNS INTEGER[]
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
BEGIN
    RETURN (SELECT COALESCE(array_agg(s ORDER BY r.ord, s), '{}')
        FROM jsonb_array_elements(convert_from(p_ranges, 'UTF8')::jsonb) WITH ORDINALITY
            AS r(range, ord),
            generate_series((r.range ->> 0)::int, (r.range ->> 1)::int - 1) AS s);
END
$$;
