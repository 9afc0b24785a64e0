-- A session's rows go with its `conversations` row by one trigger per DELETE statement
-- instead of a foreign key on each table (issue 28): each key checked every row inserted,
-- an RI query and a row lock per row, ~15% of a short conversation's server time
-- (bench/analysis.md), where the writes already hold their conversation row locked.
--
-- The protocol in place of the check: whatever inserts rows of a session holds its
-- conversation row locked (FOR KEY SHARE or stronger, as the key's check did) from before
-- its first insert to its commit. A delete of the row then waits for the write and deletes
-- what it stored, or deletes first and the write, waiting for it, finds no row (creates it
-- again, or stores nothing). The triggers come with their functions (functions/
-- `vera_delete_session_rows`, `vera_truncate_session_rows`), applied right after the
-- migrations in the same transaction.
--
-- `conversations` is locked first, as every writer takes it (its row, then the rows it
-- inserts): dropping a key locks its table, then `conversations`, so a writer of a process
-- still running the code before (a rolling deploy), holding its row and then inserting,
-- deadlocked with this migration, which was aborted.
LOCK TABLE conversations IN ACCESS EXCLUSIVE MODE;

DO $$
DECLARE
    v_key RECORD;
BEGIN
    FOR v_key IN
        SELECT conrelid::regclass AS child, conname FROM pg_constraint
        WHERE contype = 'f' AND confrelid = 'conversations'::regclass
            AND conrelid = ANY (ARRAY['checkpoints', 'checkpoint_blobs', 'checkpoint_writes',
                'conversation_messages', 'transcript_heads', 'checkpoint_retention']::regclass[])
    LOOP
        EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I', v_key.child, v_key.conname);
    END LOOP;
END
$$;
