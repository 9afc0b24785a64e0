-- The transcript is rewritten once per turn instead of at every step.
--
-- `conversations.messages` is one JSONB value, which PostgreSQL rewrites whole (TOAST and
-- all) at every update: a tool turn (question, tool call, tool result, answer) rewrote it
-- four times, and each rewrite left a dead copy for autovacuum. While the graph still has a
-- task to run (the caller says so: `p_defer`), a step's new messages now wait in the
-- append-only `conversation_messages`, their seqs in `transcript_heads.pending`; the step
-- that ends the run, a failed or interrupted step (`vera_show_latest`), or any step that
-- doesn't only grow the transcript shows them all in one rewrite. The latest root
-- checkpoint's transcript is always `seqs || pending`; `conversations.messages` shows
-- `seqs`.

ALTER TABLE transcript_heads ADD COLUMN IF NOT EXISTS pending INTEGER[] NOT NULL DEFAULT '{}';
