-- Threads of the LangGraph Agent Server API (`src/api/agent_server/`): each is a session, so
-- its metadata (the SDK's `threads.create(metadata=...)`, `threads.update`) is a column of
-- its owner row; an empty object when none was given.
ALTER TABLE session_owners ADD COLUMN IF NOT EXISTS metadata JSONB NOT NULL DEFAULT '{}';

-- Sessions written without the API (Studio's, the library's) get their owner rows when the
-- default principal lists its sessions: each worker then looks only at the conversations
-- created since its last look, found by this index (`sql.ADOPT_UNOWNED_SESSIONS_SINCE`).
CREATE INDEX IF NOT EXISTS idx_conversations_created_at ON conversations (created_at);
