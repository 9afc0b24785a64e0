-- Threads of the LangGraph Agent Server API (`src/api/agent_server/`): each is a session, so
-- its metadata (the SDK's `threads.create(metadata=...)`, `threads.update`) is a column of
-- its owner row; an empty object when none was given.
ALTER TABLE session_owners ADD COLUMN IF NOT EXISTS metadata JSONB NOT NULL DEFAULT '{}';

-- A session written without the API (by `langgraph dev` for Studio, or by the library
-- directly) gets its owner row when its conversation is first stored, the default
-- principal's, as CLAIM_SESSION would give it: so it is listed by `GET /sessions` and
-- `POST /threads/search` like any other (titled by its first user message). A session the
-- API created already has its row (claimed before its first write): nothing changes.
-- Only inserts fire it, once per session; the checkpointer's writes themselves are updates.
CREATE OR REPLACE FUNCTION vera_own_written_session() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO session_owners (session_id, principal, created_at, updated_at)
    VALUES (NEW.session_id, 'default', COALESCE(NEW.created_at::timestamptz, NOW()), NOW())
    ON CONFLICT (session_id) DO NOTHING;
    RETURN NULL;
END;
$$;

DROP TRIGGER IF EXISTS vera_own_written_session ON conversations;
CREATE TRIGGER vera_own_written_session AFTER INSERT ON conversations
FOR EACH ROW EXECUTE FUNCTION vera_own_written_session();

-- The sessions Studio or the library wrote before this migration: the default principal's.
INSERT INTO session_owners (session_id, principal, created_at, updated_at)
SELECT c.session_id, 'default', COALESCE(c.created_at::timestamptz, NOW()),
       COALESCE(c.updated_at::timestamptz, NOW())
FROM conversations AS c
ON CONFLICT (session_id) DO NOTHING;
