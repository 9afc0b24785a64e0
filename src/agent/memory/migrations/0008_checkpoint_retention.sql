-- Checkpoint retention (`retention_ops.py`): per session, where its last prune left it:
-- the head it kept, the policy it applied, and when a checkpoint kept only for its age
-- falls out of it (NULL: never). A sweep prunes the sessions whose head moved since, or
-- whose `due_at` passed, or that another policy pruned; the row goes with its session.
CREATE TABLE IF NOT EXISTS checkpoint_retention (
    session_id UUID PRIMARY KEY REFERENCES conversations(session_id) ON DELETE CASCADE,
    head TEXT NOT NULL,
    policy TEXT NOT NULL,
    due_at TIMESTAMPTZ,
    retained_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
