-- The events of each turn's stream, kept for a bounded time (`TURN_EVENTS_TTL_SECONDS`) so
-- that a client whose connection dropped can learn how its turn ended and replay the
-- stream after its `Last-Event-ID`, from any worker. Token events are written in small
-- batches; every batch is announced with NOTIFY on channel `vera_turn_events`.
-- No foreign key: a turn's first events come before its conversation row exists.
CREATE TABLE IF NOT EXISTS turn_events (
    session_id UUID NOT NULL,
    turn_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    event TEXT NOT NULL,
    data JSONB NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    PRIMARY KEY (session_id, turn_id, seq)
);
CREATE INDEX IF NOT EXISTS idx_turn_events_created_at ON turn_events (created_at);
