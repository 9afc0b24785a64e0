-- An update of `conversations.messages` rewrites it whole (PostgreSQL cannot change part of
-- a TOASTed value), so that rewrite is the cost that grows with a long conversation. LZ4
-- makes it about 3x faster than the default pglz, for ~30% more bytes per copy (measured
-- in docs/benchmarks.md). Servers built without LZ4 keep pglz.
DO $$
BEGIN
    IF EXISTS (
        SELECT FROM pg_settings
        WHERE name = 'default_toast_compression' AND 'lz4' = ANY (enumvals)
    ) THEN
        EXECUTE 'ALTER TABLE conversations ALTER COLUMN messages SET COMPRESSION lz4';
    END IF;
END
$$;

-- The old copies left by those rewrites are dead tuples: have autovacuum reclaim them for
-- reuse early instead of at the default 20% of the table.
ALTER TABLE conversations SET (
    autovacuum_vacuum_scale_factor = 0.02,
    toast.autovacuum_vacuum_scale_factor = 0.02
);
