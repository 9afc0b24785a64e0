-- The seqs of a ranges blob (`[[start, end), ...]` as JSON), in order.
CREATE OR REPLACE FUNCTION vera_blob_seqs(blob BYTEA) RETURNS INTEGER[]
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
BEGIN
    RETURN (SELECT COALESCE(array_agg(s ORDER BY r.ord, s), '{}')
        FROM jsonb_array_elements(convert_from(blob, 'UTF8')::jsonb) WITH ORDINALITY
            AS r(rng, ord),
            generate_series((r.rng ->> 0)::int, (r.rng ->> 1)::int - 1) AS s);
END
$$;
