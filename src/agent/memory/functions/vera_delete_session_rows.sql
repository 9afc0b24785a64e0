-- The trigger of every DELETE on `conversations`: the rows of the conversations deleted
-- (`gone`, the statement's transition table) go from every table holding rows of a
-- session, as the foreign keys' ON DELETE CASCADE did row by row (migration 10 says why,
-- and the writers' locking it relies on). In READ COMMITTED only: each statement here sees
-- what a write it waited for committed, where a REPEATABLE READ snapshot would miss those
-- rows and leave them behind (the keys' check raised a serialization failure there), so
-- such a delete is refused. The trigger is created with the function.
CREATE OR REPLACE FUNCTION vera_delete_session_rows() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_sids UUID[];
BEGIN
    SELECT array_agg(g.session_id) INTO v_sids FROM gone g;
    IF v_sids IS NULL THEN
        RETURN NULL;
    END IF;
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION
            'conversations are deleted in READ COMMITTED only (a snapshot misses new rows)';
    END IF;
    DELETE FROM checkpoint_writes WHERE session_id = ANY (v_sids);
    DELETE FROM checkpoint_blobs WHERE session_id = ANY (v_sids);
    DELETE FROM checkpoints WHERE session_id = ANY (v_sids);
    DELETE FROM conversation_messages WHERE session_id = ANY (v_sids);
    DELETE FROM transcript_heads WHERE session_id = ANY (v_sids);
    DELETE FROM checkpoint_retention WHERE session_id = ANY (v_sids);
    RETURN NULL;
END
$$;

DROP TRIGGER IF EXISTS vera_delete_session_rows ON conversations;
CREATE TRIGGER vera_delete_session_rows AFTER DELETE ON conversations
REFERENCING OLD TABLE AS gone
FOR EACH STATEMENT EXECUTE FUNCTION vera_delete_session_rows();
