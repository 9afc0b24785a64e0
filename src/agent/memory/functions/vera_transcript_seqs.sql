-- The latest root checkpoint's transcript, as seqs: what `conversations.messages` shows,
-- then the messages waiting in `conversation_messages` for the end of the run that wrote
-- them. (A SQL function: inlined where it is used, planned with the statement.)
CREATE OR REPLACE FUNCTION vera_transcript_seqs(p_head transcript_heads) RETURNS INTEGER[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT p_head.seqs || p_head.waiting
$$;
