-- Fencing (`fencing.py`): a write made under a lease names it (`p_lease`: the run id of
-- `turn_leases`) and is refused (SQLSTATE VR001) unless that lease is still the session's;
-- its row stays locked FOR SHARE until the write commits, so no other run can take the
-- session over between the check and the write. A write without a lease (LangGraph Studio,
-- a script) is refused (VR002) while a run holds an unexpired lease of the session, instead
-- of forking the conversation under it.
CREATE OR REPLACE FUNCTION vera_check_writer(p_session_id UUID, p_lease UUID) RETURNS VOID
LANGUAGE plpgsql AS $$
BEGIN
    IF p_lease IS NOT NULL THEN
        PERFORM 1 FROM turn_leases l WHERE l.session_id = p_session_id AND l.run_id = p_lease
        FOR SHARE;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'session %: lease % is no longer held', p_session_id, p_lease
                USING ERRCODE = 'VR001';
        END IF;
    ELSE
        PERFORM 1 FROM turn_leases l
        WHERE l.session_id = p_session_id AND l.expires_at > clock_timestamp();
        IF FOUND THEN
            RAISE EXCEPTION 'session %: a turn holds its lease; write again when it ends',
                p_session_id USING ERRCODE = 'VR002';
        END IF;
    END IF;
END
$$;
