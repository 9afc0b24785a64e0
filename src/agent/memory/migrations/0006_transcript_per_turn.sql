-- The transcript is rewritten once per turn instead of at every step: while its run goes
-- on, a step's new messages wait in `conversation_messages`, their seqs in this column
-- (named `waiting` since migration 7), until one rewrite shows them all
-- (`functions/vera_next_head.sql`). `conversations.messages` is one JSONB value, which
-- PostgreSQL rewrites whole at every update: a tool turn (question, tool call, tool
-- result, answer) rewrote it four times, each leaving a dead copy for autovacuum.

ALTER TABLE transcript_heads ADD COLUMN IF NOT EXISTS pending INTEGER[] NOT NULL DEFAULT '{}';
