-- Fencing: a write made for a turn names the turn's lease (`turn_leases.run_id`) and is
-- refused (SQLSTATE VR001) unless that lease is still this session's. The row is locked
-- FOR SHARE until the write commits, so no other worker can take the session over between
-- the check and the write.
CREATE OR REPLACE FUNCTION vera_check_lease(p_session UUID, p_lease UUID) RETURNS VOID
LANGUAGE plpgsql AS $$
BEGIN
    IF p_lease IS NULL THEN
        RETURN;
    END IF;
    PERFORM 1 FROM turn_leases l WHERE l.session_id = p_session AND l.run_id = p_lease
    FOR SHARE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'session %: lease % is no longer held', p_session, p_lease
            USING ERRCODE = 'VR001';
    END IF;
END
$$;
