-- Fencing (see `vera_check_lease`), and one more rule: a write that carries no
-- lease (LangGraph Studio, a script) is refused (SQLSTATE VR002) while a turn of the API
-- holds the session, instead of forking the conversation under it (the later write would
-- then silently decide which run's messages the transcript shows). Without the API's
-- `turn_leases` table (the checkpointer used as a library) there is nothing to check.
CREATE OR REPLACE FUNCTION vera_check_writer(p_session UUID, p_lease UUID) RETURNS VOID
LANGUAGE plpgsql AS $$
BEGIN
    IF p_lease IS NOT NULL THEN
        PERFORM vera_check_lease(p_session, p_lease);
    ELSIF to_regclass('turn_leases') IS NOT NULL THEN
        PERFORM 1 FROM turn_leases l
        WHERE l.session_id = p_session AND l.expires_at > clock_timestamp();
        IF FOUND THEN
            RAISE EXCEPTION 'session %: a turn of the API is running on it; write again when it ends',
                p_session USING ERRCODE = 'VR002';
        END IF;
    END IF;
END
$$;
