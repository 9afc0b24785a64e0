-- One row per session whose turn is in progress: the API's "one turn at a time" lock,
-- shared by every worker process. The holder renews `expires_at` while the turn runs,
-- so a worker that crashes frees its sessions when their lease runs out.
-- No foreign key: a session's first turn takes its lease before the conversation exists.
CREATE TABLE IF NOT EXISTS turn_leases (
    session_id UUID PRIMARY KEY,
    run_id UUID NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);
