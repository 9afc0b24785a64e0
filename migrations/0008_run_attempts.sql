-- A run's attempts (`src/api/agent_server/run_recovery.py`): a run whose worker died (its
-- lease expired, its row still `running`) is taken over by a live worker, which resumes it
-- from its last checkpoint under a lease of its own. `attempt` counts the attempts (as
-- langgraph-api's `run_attempt`; past `MAX_ATTEMPTS` the run ends `error`), `lease_id` is
-- the lease the current attempt holds the thread with (NULL: the run id, its first
-- attempt's). Only the holder of that lease may record how the run ended.
ALTER TABLE thread_runs ADD COLUMN IF NOT EXISTS attempt INTEGER NOT NULL DEFAULT 1;
ALTER TABLE thread_runs ADD COLUMN IF NOT EXISTS lease_id UUID;
-- The runs not ended yet: what each worker's sweep looks through.
CREATE INDEX IF NOT EXISTS idx_thread_runs_active ON thread_runs (created_at)
    WHERE status IN ('pending', 'running');
