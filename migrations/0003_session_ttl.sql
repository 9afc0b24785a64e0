-- Sessions idle longer than a time-to-live are deleted whole by a sweep in every worker
-- (`src/api/session_ttl.py`). The TTL is the server's default (`SESSION_TTL_MINUTES`,
-- off unless set) or, when set, the session's own `ttl_minutes` (`PUT /sessions/{id}/ttl`).
-- A session is idle since its last turn ended (`updated_at`, which each turn moves on) or
-- its transcript last changed, whichever is later.
ALTER TABLE session_owners ADD COLUMN IF NOT EXISTS ttl_minutes DOUBLE PRECISION
    CHECK (ttl_minutes > 0);

-- The sweep walks the sessions idle longest first: those on the default TTL from one index,
-- those with a TTL of their own from another. Both are partial, so the session list's
-- query (which names neither) never takes them for its own index.
CREATE INDEX IF NOT EXISTS idx_session_owners_idle ON session_owners (updated_at)
    WHERE ttl_minutes IS NULL;
CREATE INDEX IF NOT EXISTS idx_session_owners_own_ttl_idle ON session_owners (updated_at)
    WHERE ttl_minutes IS NOT NULL;

-- The shortest TTL a session has of its own: how far the second walk must go.
CREATE INDEX IF NOT EXISTS idx_session_owners_ttl ON session_owners (ttl_minutes)
    WHERE ttl_minutes IS NOT NULL;
