-- The trigger of a TRUNCATE of `conversations` (which the foreign keys refused): every
-- table holding rows of a session is emptied with it. Created with the function.
CREATE OR REPLACE FUNCTION vera_truncate_session_rows() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    TRUNCATE checkpoint_writes, checkpoint_blobs, checkpoints, conversation_messages,
        transcript_heads, checkpoint_retention;
    RETURN NULL;
END
$$;

DROP TRIGGER IF EXISTS vera_truncate_session_rows ON conversations;
CREATE TRIGGER vera_truncate_session_rows AFTER TRUNCATE ON conversations
FOR EACH STATEMENT EXECUTE FUNCTION vera_truncate_session_rows();
