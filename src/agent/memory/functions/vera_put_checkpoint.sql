-- `aput` in one round trip (`put.py`), in three steps: take the session and check the
-- writer (`vera_take_session`), store the checkpoint's rows, advance the transcript (where
-- its head goes, `vera_next_head`; moved by `vera_move_head`).
--
-- The checkpoint's transcript was planned (`TranscriptPlan`) from the saver's cached copy
-- of the message log of conversation `p_conversation_id`, believed to hold seqs
-- [0, p_next_seq): `p_seqs` are the transcript's messages, `p_new_messages` those not
-- stored yet (seqs `p_next_seq`, ...). A plan made from a stale copy (another writer since)
-- stores nothing and answers `stored` false: the caller catches its copy up under the row
-- lock and calls again. No plan (`p_seqs` NULL): the transcript channel did not change, or
-- is not a message list.
--
-- Its settings hold for the functions it calls (`__init__.py` says why).
CREATE OR REPLACE FUNCTION vera_put_checkpoint(
    p_session_id UUID, p_checkpoint_ns TEXT, p_checkpoint_id TEXT,
    p_parent_checkpoint_id TEXT, p_thread_id TEXT, p_checkpoint JSONB, p_metadata JSONB,
    p_channels TEXT[], p_versions TEXT[], p_types TEXT[], p_blobs BYTEA[],
    p_transcript_channel TEXT, p_seqs INTEGER[], p_new_messages JSONB, p_next_seq INTEGER,
    p_conversation_id UUID, p_lease UUID, p_run_parent TEXT, p_run_goes_on BOOLEAN,
    OUT conversation_id UUID, OUT stored BOOLEAN
) LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan SET enable_seqscan = off AS $$
DECLARE
    v_taken RECORD;
    v_head transcript_heads;
    v_next transcript_heads;
BEGIN
    v_taken := vera_take_session(p_session_id, p_lease, p_run_parent);
    conversation_id := v_taken.conversation_id;
    v_head := v_taken.head;
    stored := NOT ((p_next_seq > 0 AND conversation_id IS DISTINCT FROM p_conversation_id)
        OR (p_new_messages IS NOT NULL AND v_head.next_seq <> p_next_seq));
    IF stored THEN
        -- Store the rows: the new channel values (a version already stored is kept) and
        -- the checkpoint (stored again, its body and metadata replace the old ones).
        INSERT INTO checkpoint_blobs (session_id, checkpoint_ns, channel, version, type, blob)
        SELECT p_session_id, p_checkpoint_ns, u.channel, u.version, u.type, u.blob
        FROM unnest(p_channels, p_versions, p_types, p_blobs) AS u(channel, version, type, blob)
        ON CONFLICT (session_id, checkpoint_ns, channel, version) DO NOTHING;
        INSERT INTO checkpoints (session_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id,
            thread_id, checkpoint, metadata)
        VALUES (p_session_id, p_checkpoint_ns, p_checkpoint_id, p_parent_checkpoint_id,
            p_thread_id, p_checkpoint, p_metadata)
        ON CONFLICT (session_id, checkpoint_ns, checkpoint_id)
        DO UPDATE SET checkpoint = EXCLUDED.checkpoint, metadata = EXCLUDED.metadata;
        v_next := vera_next_head(v_head, p_checkpoint_ns, p_checkpoint_id, p_checkpoint,
            p_transcript_channel, p_seqs, p_new_messages, p_run_goes_on);
        IF v_next.session_id IS NOT NULL THEN  -- the head moves
            PERFORM vera_move_head(v_head, v_next, p_new_messages);
        END IF;
    END IF;
END
$$;
