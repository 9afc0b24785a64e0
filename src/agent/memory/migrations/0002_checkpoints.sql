-- The rest of LangGraph's checkpoint contract. Every row belongs to a conversation,
-- so deleting a session removes its checkpoints, channel values and writes with it.
-- `thread_id` keeps the caller's original thread id (it maps to `session_id`).

-- One row per checkpoint; `checkpoint` holds it without channel values.
CREATE TABLE IF NOT EXISTS checkpoints (
    session_id UUID NOT NULL REFERENCES conversations(session_id) ON DELETE CASCADE,
    checkpoint_ns TEXT NOT NULL DEFAULT '',
    checkpoint_id TEXT NOT NULL,
    parent_checkpoint_id TEXT,
    thread_id TEXT NOT NULL,
    checkpoint JSONB NOT NULL,
    metadata JSONB NOT NULL DEFAULT '{}'::jsonb,
    run_id TEXT GENERATED ALWAYS AS (metadata ->> 'run_id') STORED,
    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    PRIMARY KEY (session_id, checkpoint_ns, checkpoint_id)
);
CREATE INDEX IF NOT EXISTS idx_checkpoints_run_id ON checkpoints(run_id) WHERE run_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS idx_checkpoints_checkpoint_id ON checkpoints(checkpoint_id);

-- One row per (channel, version). For the root `messages` channel the blob is not the
-- message list but the numbers of its messages, as ranges (`seq_ranges.py`), so each
-- message is stored once however many checkpoints hold it.
CREATE TABLE IF NOT EXISTS checkpoint_blobs (
    session_id UUID NOT NULL REFERENCES conversations(session_id) ON DELETE CASCADE,
    checkpoint_ns TEXT NOT NULL DEFAULT '',
    channel TEXT NOT NULL,
    version TEXT NOT NULL,
    type TEXT NOT NULL,
    blob BYTEA,
    PRIMARY KEY (session_id, checkpoint_ns, channel, version)
);

-- Pending writes of the tasks of a checkpoint's next step.
CREATE TABLE IF NOT EXISTS checkpoint_writes (
    session_id UUID NOT NULL REFERENCES conversations(session_id) ON DELETE CASCADE,
    checkpoint_ns TEXT NOT NULL DEFAULT '',
    checkpoint_id TEXT NOT NULL,
    task_id TEXT NOT NULL,
    idx INTEGER NOT NULL,
    channel TEXT NOT NULL,
    type TEXT,
    blob BYTEA NOT NULL,
    task_path TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (session_id, checkpoint_ns, checkpoint_id, task_id, idx)
);
