-- Who owns each session the API created (the spec's `conversations` table is unchanged),
-- and what `GET /sessions` lists: a title, the creation and last-turn times. A principal
-- is an API key's name; `user_id` is the end user a trusted gateway key acts for ('' else).
-- Sessions without a row (written by Studio, or before this migration) belong to the
-- `default` principal (the one of API_KEY, or every caller when no key is configured).
CREATE TABLE IF NOT EXISTS session_owners (
    session_id UUID PRIMARY KEY,
    principal TEXT NOT NULL,
    user_id TEXT NOT NULL DEFAULT '',
    title TEXT NOT NULL DEFAULT '',
    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT NOW()
);

-- The session list of one caller, newest first, read page by page from this index alone.
CREATE INDEX IF NOT EXISTS idx_session_owners_list
ON session_owners (principal, user_id, updated_at DESC, session_id DESC);

-- Existing sessions go to the default principal, titled by their first user message.
INSERT INTO session_owners (session_id, principal, title, created_at, updated_at)
SELECT c.session_id,
       'default',
       COALESCE((SELECT left(e->>'content', 80)
                 FROM jsonb_array_elements(c.messages) AS e
                 WHERE e->>'role' = 'user' AND jsonb_typeof(e->'content') = 'string'
                 LIMIT 1), ''),
       COALESCE(c.created_at, NOW()),
       COALESCE(c.updated_at, NOW())
FROM conversations AS c
ON CONFLICT (session_id) DO NOTHING;
