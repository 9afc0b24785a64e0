-- The messages of a running turn that wait for its end: `waiting`, as everywhere.
ALTER TABLE transcript_heads RENAME COLUMN pending TO waiting;

-- The stored functions live in `functions/`, in their current form only, and are created
-- after the migrations. Every signature an earlier version created goes here, so that an
-- upgraded database ends with exactly the functions of a new one.
DROP FUNCTION IF EXISTS vera_blob_seqs(BYTEA);
DROP FUNCTION IF EXISTS vera_checkpoint_seqs(UUID, JSONB, TEXT);
DROP FUNCTION IF EXISTS vera_messages_from(UUID, INTEGER);
DROP FUNCTION IF EXISTS vera_elements(UUID, INTEGER[]);
DROP FUNCTION IF EXISTS vera_show_seqs(UUID, INTEGER[], JSONB, INTEGER);
DROP FUNCTION IF EXISTS vera_show_seqs(UUID, INTEGER[], INTEGER[], JSONB, INTEGER);
DROP FUNCTION IF EXISTS vera_show_latest(UUID);
DROP FUNCTION IF EXISTS vera_refresh_transcript(UUID, TEXT);
DROP FUNCTION IF EXISTS vera_conversation_row(UUID, BOOLEAN);
DROP FUNCTION IF EXISTS vera_check_lease(UUID, UUID);
DROP FUNCTION IF EXISTS vera_check_writer(UUID, UUID);
DROP FUNCTION IF EXISTS vera_put_checkpoint(UUID, TEXT, TEXT[], TEXT[], TEXT[], BYTEA[], TEXT,
    TEXT, TEXT, JSONB, JSONB, TEXT, INTEGER[], JSONB, UUID, INTEGER);
DROP FUNCTION IF EXISTS vera_put_checkpoint(UUID, TEXT, TEXT[], TEXT[], TEXT[], BYTEA[], TEXT,
    TEXT, TEXT, JSONB, JSONB, TEXT, INTEGER[], JSONB, UUID, INTEGER, UUID);
DROP FUNCTION IF EXISTS vera_put_checkpoint(UUID, TEXT, TEXT[], TEXT[], TEXT[], BYTEA[], TEXT,
    TEXT, TEXT, JSONB, JSONB, TEXT, INTEGER[], JSONB, UUID, INTEGER, UUID, BOOLEAN);
DROP FUNCTION IF EXISTS vera_put_checkpoint(UUID, TEXT, TEXT[], TEXT[], TEXT[], BYTEA[], TEXT,
    TEXT, TEXT, JSONB, JSONB, TEXT, INTEGER[], JSONB, UUID, INTEGER, UUID, BOOLEAN, TEXT);
DROP FUNCTION IF EXISTS vera_put_writes(UUID, TEXT, TEXT, TEXT, TEXT, INTEGER[], TEXT[], TEXT[],
    BYTEA[], BOOLEAN, UUID);
DROP FUNCTION IF EXISTS vera_put_writes(UUID, TEXT, TEXT, TEXT, TEXT, INTEGER[], TEXT[], TEXT[],
    BYTEA[], BOOLEAN, UUID, BOOLEAN);
