-- Runs of the LangGraph Agent Server API (`POST /threads/{id}/runs...`,
-- `src/api/agent_server/`; `thread_runs`, as the memory library's text says "runs" too and
-- names no app table, `tests/unit/test_layering.py`): one row per run, in the fields of `langgraph_sdk`'s `Run`. A run
-- is a turn of its thread's session (`session_id`, the thread id), run by the turn runner
-- under the session's lease; its events are the turn events of turn `run_id`. `kwargs`
-- holds what the run was asked (input, command, config, context, stream_mode, ...).
-- Deleted with its session (`sql.ERASE_SESSIONS`).
CREATE TABLE IF NOT EXISTS thread_runs (
    run_id UUID PRIMARY KEY,
    session_id UUID NOT NULL,
    assistant_id UUID NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending' CHECK (
        status IN ('pending', 'running', 'error', 'success', 'timeout', 'interrupted')
    ),
    metadata JSONB NOT NULL DEFAULT '{}',
    kwargs JSONB NOT NULL DEFAULT '{}',
    multitask_strategy TEXT NOT NULL DEFAULT 'reject',
    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT NOW()
);
-- A thread's runs, newest first (`GET /threads/{id}/runs`).
CREATE INDEX IF NOT EXISTS idx_thread_runs_session_created ON thread_runs (session_id, created_at DESC);
