-- Where the transcript head goes past a checkpoint just stored (NULL: it stays). The caller
-- took the session and checked the plan: new messages take the seqs from `p_head.next_seq`
-- on. Only the session's latest root checkpoint moves what the transcript is: its messages
-- (`p_seqs`, else the head's when the channel's version did not change, else the stored
-- checkpoint's) are shown now, or wait for the end of the run while the run goes on and
-- only adds messages. The new messages of any other checkpoint belong to another branch.
CREATE OR REPLACE FUNCTION vera_next_head(
    p_head transcript_heads, p_checkpoint_ns TEXT, p_checkpoint_id TEXT, p_checkpoint JSONB,
    p_transcript_channel TEXT, p_seqs INTEGER[], p_new_messages JSONB, p_run_goes_on BOOLEAN
) RETURNS transcript_heads LANGUAGE plpgsql AS $$
DECLARE
    v_next transcript_heads := p_head;
    v_seqs INTEGER[];
    v_shown INTEGER := cardinality(p_head.seqs);
    v_waits BOOLEAN;
BEGIN
    v_next.next_seq := p_head.next_seq + COALESCE(jsonb_array_length(p_new_messages), 0);
    IF p_checkpoint_ns <> ''
        OR (p_head.checkpoint_id IS NOT NULL AND p_checkpoint_id < p_head.checkpoint_id) THEN
        RETURN CASE WHEN p_new_messages IS NOT NULL THEN v_next END;  -- not the latest
    END IF;
    v_next.checkpoint_id := p_checkpoint_id;
    v_next.version := p_checkpoint -> 'channel_versions' ->> p_transcript_channel;
    IF p_seqs IS NOT NULL THEN
        v_seqs := p_seqs;
    ELSIF v_next.version IS NOT DISTINCT FROM p_head.version THEN
        v_seqs := vera_transcript_seqs(p_head);
    ELSE
        v_seqs := vera_checkpoint_seqs(p_head.session_id, p_checkpoint, p_transcript_channel);
    END IF;
    -- The run goes on and this checkpoint only adds messages: they wait for its end, unless
    -- the run already stopped here (LangGraph stores a step's writes and the checkpoint
    -- before it concurrently: an error or an interrupt may come first).
    v_waits := p_run_goes_on AND v_seqs[1:v_shown] = p_head.seqs
        AND NOT (v_seqs[v_shown + 1:] && p_head.seqs);
    IF v_waits THEN
        v_waits := NOT EXISTS (SELECT FROM checkpoint_writes w
            WHERE w.session_id = p_head.session_id AND w.checkpoint_ns = ''
                AND w.checkpoint_id = p_checkpoint_id
                AND w.channel IN ('__error__', '__interrupt__'));
    END IF;
    IF v_waits THEN
        v_next.waiting := v_seqs[v_shown + 1:];
    ELSIF v_seqs IS NOT NULL THEN
        v_next.seqs := v_seqs;
        v_next.waiting := '{}';
    END IF;  -- v_seqs NULL: not a message list, the transcript stays as it is
    RETURN v_next;
END
$$;
