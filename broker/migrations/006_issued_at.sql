-- A notice says when the broker issued it (issued_at: the wall clock when
-- the revision was decided), never the event time that decided it: that is
-- the finalized_at of a review, to the second, and a notice states no date
-- finer than a month. The event time stays here for the engine's own checks
-- and tests (notice_revisions.event_time, never published).
ALTER TABLE notice_revisions ADD COLUMN event_time timestamptz;
UPDATE notice_revisions SET event_time = issued_at;

-- Notice ids are derived from rule, group and the episode's start (an event
-- time) so that a replay finds the same ids; keyed with this secret, so that
-- the start cannot be searched for from a notice.
ALTER TABLE engine_state
    ADD COLUMN id_key text NOT NULL
        DEFAULT replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', '');

-- engine_commit of 003, storing each revision's event_time apart from its
-- body.
CREATE OR REPLACE FUNCTION engine_commit(c jsonb) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    next_generation bigint;
BEGIN
    UPDATE engine_state
       SET last_fact_id = (c->>'last_fact_id')::bigint,
           clock = (c->>'clock')::bigint,
           generation = generation + 1,
           leader = c->>'leader',
           updated_at = now()
     WHERE id = 1 AND generation = (c->>'generation')::bigint
    RETURNING generation INTO next_generation;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'sn_fenced: another rule engine committed since generation %',
            c->>'generation' USING ERRCODE = 'P0001';
    END IF;

    INSERT INTO episodes (rule, group_key, group_labels, notice_id, started_at, state)
    SELECT e->>'rule', e->>'group_key', e->'group', e->>'notice_id', (e->>'started_at')::bigint,
           e->'state'
      FROM jsonb_array_elements(c->'episodes') AS e
        ON CONFLICT (rule, group_key) DO UPDATE
       SET group_labels = EXCLUDED.group_labels, notice_id = EXCLUDED.notice_id,
           started_at = EXCLUDED.started_at, state = EXCLUDED.state, updated_at = now();

    -- revisions in the order decided: a notice's revisions ascend
    INSERT INTO notices AS n (id, rule, group_key, group_labels, started_at, revision, status,
                              severity, issued_at, body)
    SELECT DISTINCT ON (r->>'id') r->>'id', r->>'rule', r->>'group_key', r->'group',
           (r->>'started_at')::timestamptz, (r->>'revision')::int, r->>'status', r->>'severity',
           (r->>'issued_at')::timestamptz, r - 'group_key' - 'started_at' - 'event_time'
      FROM jsonb_array_elements(c->'revisions') WITH ORDINALITY AS t(r, ord)
     ORDER BY r->>'id', ord DESC
        ON CONFLICT (id) DO UPDATE
       SET revision = EXCLUDED.revision, status = EXCLUDED.status, severity = EXCLUDED.severity,
           issued_at = EXCLUDED.issued_at, body = EXCLUDED.body
     WHERE n.revision < EXCLUDED.revision;

    INSERT INTO notice_revisions (notice_id, revision, status, severity, issued_at, event_time,
                                  body)
    SELECT r->>'id', (r->>'revision')::int, r->>'status', r->>'severity',
           (r->>'issued_at')::timestamptz, (r->>'event_time')::timestamptz,
           r - 'group_key' - 'started_at' - 'event_time'
      FROM jsonb_array_elements(c->'revisions') AS r;

    INSERT INTO outbox (notice_id, revision, channel, target)
    SELECT r->>'id', (r->>'revision')::int, 'kafka', r->>'topic'
      FROM jsonb_array_elements(c->'revisions') AS r;

    IF jsonb_array_length(c->'revisions') > 0 THEN
        PERFORM pg_notify('sn_notices', jsonb_array_length(c->'revisions')::text);
    END IF;
    RETURN next_generation;
END
$$;
