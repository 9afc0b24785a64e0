-- The write functions' steps are written out in `vera_put_checkpoint` and `vera_put_writes`
-- (issue 28: a nested PL/pgSQL call cost more than most of the statements it ran): the
-- functions that made them go.
DROP FUNCTION IF EXISTS vera_take_session(UUID, UUID, TEXT);
DROP FUNCTION IF EXISTS vera_check_writer(UUID, UUID);
DROP FUNCTION IF EXISTS vera_next_head(
    transcript_heads, TEXT, TEXT, JSONB, TEXT, INTEGER[], JSONB, BOOLEAN);
