-- The transcript's append is made by the statement that moves its head (`vera_move_head`):
-- `vera_append_to_transcript`, which made it, gives way to `vera_appended_elements`, which
-- only says what the transcript gains (issue 28: fewer statements per write).
DROP FUNCTION IF EXISTS vera_append_to_transcript(transcript_heads, INTEGER[], JSONB);
