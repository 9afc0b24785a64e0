-- Threads of the LangGraph Agent Server API (`src/api/agent_server/`): each is a session, so
-- its metadata (the SDK's `threads.create(metadata=...)`, `threads.update`) is a column of
-- its owner row; an empty object when none was given.
ALTER TABLE session_owners ADD COLUMN IF NOT EXISTS metadata JSONB NOT NULL DEFAULT '{}';
