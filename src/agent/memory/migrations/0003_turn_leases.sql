-- One row per session that a turn holds: the lease that lets one turn at a time write the
-- session, across every process (`leases.py`). The holder renews `expires_at` while its
-- turn runs, so a process that crashes frees its sessions when their leases run out; the
-- checkpointer refuses the writes of a turn whose lease is gone (fencing).
-- No foreign key: a session's first turn takes its lease before the conversation exists.
CREATE TABLE IF NOT EXISTS turn_leases (
    session_id UUID PRIMARY KEY,
    run_id UUID NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);
