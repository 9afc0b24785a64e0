-- Requests to stop a running turn (`POST /sessions/{id}/turns/{turn_id}/cancel`), one per
-- run: the request is announced with NOTIFY on channel `vera_turn_cancels` (payload: the
-- run id), and kept here so that the worker running the turn still finds it, by its
-- once-a-second look, when that notification was lost (its LISTEN connection was down).
-- The worker deletes the row once the turn stopped; a row whose run had ended anyway is
-- deleted by the next request, an hour on (`src/api/turn_cancel.py`).
CREATE TABLE IF NOT EXISTS turn_cancels (
    run_id UUID PRIMARY KEY,
    session_id UUID NOT NULL,
    turn_id TEXT NOT NULL,
    requested_at TIMESTAMPTZ NOT NULL DEFAULT NOW()
);
CREATE INDEX IF NOT EXISTS idx_turn_cancels_session ON turn_cancels (session_id);
CREATE INDEX IF NOT EXISTS idx_turn_cancels_requested_at ON turn_cancels (requested_at);
