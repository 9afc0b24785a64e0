-- A run asked to roll back (`POST /threads/{id}/runs/{run_id}/cancel?action=rollback`): the
-- worker that runs it, once it stopped and still under the thread's lease, deletes the
-- checkpoints it wrote and its row (`agent_server/run_play.py`).
ALTER TABLE thread_runs ADD COLUMN IF NOT EXISTS rollback BOOLEAN NOT NULL DEFAULT FALSE;
