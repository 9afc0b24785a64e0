-- One true history: `conversations.messages` shows exactly the current branch, and every
-- branch stays readable by time travel, each message still stored once.
--
-- Messages are numbered by `seq` within their session (a replaced message is a new seq);
-- a root checkpoint's `messages` blob lists the seqs of its messages, as ranges.
-- `transcript_heads` says which root checkpoint `conversations.messages` shows (the
-- session's latest) and which seqs that is. A message lives in exactly one of two
-- places: in `conversations.messages` while the branch shown holds it, otherwise in
-- `conversation_messages` (what `functions/` keep there is in `README.md`'s storage model).

CREATE TABLE IF NOT EXISTS conversation_messages (
    session_id UUID NOT NULL REFERENCES conversations(session_id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    element JSONB NOT NULL,
    PRIMARY KEY (session_id, seq)
);

CREATE TABLE IF NOT EXISTS transcript_heads (
    session_id UUID PRIMARY KEY REFERENCES conversations(session_id) ON DELETE CASCADE,
    checkpoint_id TEXT,
    seqs INTEGER[] NOT NULL DEFAULT '{}',
    version TEXT,  -- the transcript channel's version in that checkpoint
    next_seq INTEGER NOT NULL DEFAULT 0
);
ALTER TABLE transcript_heads SET (autovacuum_vacuum_scale_factor = 0.02);

-- Every read names its session, so the primary key serves them all; this index only cost
-- bytes and WAL on each checkpoint, and misled plans made on stale statistics (a walk of
-- every newer checkpoint in the database instead of the session's key range).
DROP INDEX IF EXISTS idx_checkpoints_checkpoint_id;

-- Upgrade. Until this version `conversations.messages` was an append-only log of every
-- message ever checkpointed, positions being the seqs the ranges blobs hold: it becomes
-- the transcript of the log's every position (seqs 0..n-1 shown), then each session shows
-- its latest root checkpoint, moving the other branches' messages out.
INSERT INTO transcript_heads (session_id, seqs, next_seq)
SELECT session_id,
    ARRAY(SELECT generate_series(0, jsonb_array_length(COALESCE(messages, '[]'::jsonb)) - 1)),
    jsonb_array_length(COALESCE(messages, '[]'::jsonb))
FROM conversations
ON CONFLICT DO NOTHING;

-- Channel versions in LangGraph's standard form (`%032d.%016f`, as `langgraph dev` and the
-- official saver write them), so versions written by either compare correctly as strings.
CREATE FUNCTION pg_temp.std_version(v JSONB) RETURNS JSONB LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN jsonb_typeof(v) = 'string' AND (v #>> '{}') ~ '^[0-9]{10}\.[0-9a-f]{8}$'
        THEN to_jsonb(lpad(split_part(v #>> '{}', '.', 1)::bigint::text, 32, '0') || '.0.'
            || lpad((('x' || split_part(v #>> '{}', '.', 2))::bit(32)::bigint)::text, 14, '0'))
        ELSE v END
$$;

CREATE FUNCTION pg_temp.std_versions(m JSONB) RETURNS JSONB LANGUAGE sql IMMUTABLE AS $$
    SELECT COALESCE(jsonb_object_agg(key, pg_temp.std_version(value)), '{}'::jsonb)
    FROM jsonb_each(COALESCE(m, '{}'::jsonb))
$$;

UPDATE checkpoint_blobs SET version = pg_temp.std_version(to_jsonb(version)) #>> '{}'
WHERE version ~ '^[0-9]{10}\.[0-9a-f]{8}$';

UPDATE checkpoints SET checkpoint = checkpoint
    || jsonb_build_object('channel_versions', pg_temp.std_versions(checkpoint -> 'channel_versions'))
    || jsonb_build_object('versions_seen', (
        SELECT COALESCE(jsonb_object_agg(n.key, pg_temp.std_versions(n.value)), '{}'::jsonb)
        FROM jsonb_each(COALESCE(checkpoint -> 'versions_seen', '{}'::jsonb)) AS n));

-- Each session with a root checkpoint then shows its latest one: the seqs of that
-- checkpoint's ranges blob ('{}' without one). The log's other messages move to
-- `conversation_messages`; the transcript becomes the elements at those seqs.
CREATE TEMPORARY TABLE latest_shown ON COMMIT DROP AS
SELECT l.session_id, l.checkpoint_id,
    jsonb_array_length(COALESCE(c.messages, '[]'::jsonb)) AS logged,
    COALESCE((
        SELECT array_agg(s ORDER BY r.ord, s)
        FROM (SELECT b.blob
              FROM jsonb_each_text(l.checkpoint -> 'channel_versions') AS v(channel, version)
              JOIN checkpoint_blobs b ON b.session_id = l.session_id AND b.checkpoint_ns = ''
                  AND b.channel = v.channel AND b.version = v.version
              WHERE b.type = 'vera.transcript_ranges' LIMIT 1) AS t,
            jsonb_array_elements(convert_from(t.blob, 'UTF8')::jsonb) WITH ORDINALITY
                AS r(rng, ord),
            generate_series((r.rng ->> 0)::int, (r.rng ->> 1)::int - 1) AS s
    ), '{}') AS seqs
FROM (SELECT DISTINCT ON (session_id) session_id, checkpoint_id, checkpoint FROM checkpoints
      WHERE checkpoint_ns = '' ORDER BY session_id, checkpoint_id DESC) AS l
JOIN conversations c ON c.session_id = l.session_id;

DO $$
BEGIN
    IF EXISTS (SELECT FROM latest_shown, unnest(seqs) AS s WHERE s >= logged) THEN
        RAISE EXCEPTION 'a checkpoint holds messages its session''s log does not';
    END IF;
END
$$;

INSERT INTO conversation_messages (session_id, seq, element)
SELECT l.session_id, (t.j - 1)::int, t.e
FROM latest_shown l JOIN conversations c ON c.session_id = l.session_id,
    jsonb_array_elements(COALESCE(c.messages, '[]'::jsonb)) WITH ORDINALITY AS t(e, j)
WHERE (t.j - 1)::int <> ALL (l.seqs);

UPDATE conversations c
SET messages = (SELECT COALESCE(jsonb_agg(c.messages -> v.seq ORDER BY v.ord), '[]'::jsonb)
                FROM unnest(l.seqs) WITH ORDINALITY AS v(seq, ord)),
    updated_at = NOW()
FROM latest_shown l
WHERE c.session_id = l.session_id AND l.seqs <> ARRAY(SELECT generate_series(0, l.logged - 1));

UPDATE transcript_heads h SET checkpoint_id = l.checkpoint_id, seqs = l.seqs
FROM latest_shown l WHERE h.session_id = l.session_id;
