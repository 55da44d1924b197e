-- The rule engine's output and its checkpoint: notices (one per episode of a
-- rule and group), their revisions, the outbox rows that publish them, and
-- the state the elected engine resumes from after a restart or a takeover.

-- One row per notice: its latest revision, for listing.
CREATE TABLE notices (
    seq          bigserial UNIQUE,          -- listing order and cursor
    id           text PRIMARY KEY,          -- sn- + 20 hex, derived from rule, group, start
    rule         text NOT NULL,
    group_key    text NOT NULL,
    group_labels jsonb NOT NULL,
    started_at   timestamptz NOT NULL,      -- engine time of revision 1
    revision     int NOT NULL,
    status       text NOT NULL,
    severity     text NOT NULL,
    issued_at    timestamptz NOT NULL,      -- of the latest revision
    body         jsonb NOT NULL,            -- the latest revision
    UNIQUE (rule, group_key, started_at)
);
CREATE INDEX notices_by_issued ON notices (issued_at);

-- Every revision as published. The primary key makes a duplicate revision
-- impossible, whichever process or restart tries to write it again.
CREATE TABLE notice_revisions (
    notice_id text NOT NULL REFERENCES notices (id),
    revision  int NOT NULL CHECK (revision >= 1),
    status    text NOT NULL CHECK (status IN ('issued', 'escalated', 'updated', 'resolved')),
    severity  text NOT NULL,
    issued_at timestamptz NOT NULL,
    body      jsonb NOT NULL,
    stored_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (notice_id, revision)
);

-- What must be published: written in the transaction that writes the
-- revision, so nothing is published that was not stored and nothing stored is
-- left unpublished. The dispatcher (delivery) claims due rows.
CREATE TABLE outbox (
    id         bigserial PRIMARY KEY,
    notice_id  text NOT NULL,
    revision   int NOT NULL,
    channel    text NOT NULL,               -- kafka, webhook, email
    target     text NOT NULL,               -- topic, URL, address
    state      text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'dead')),
    attempts   int NOT NULL DEFAULT 0,
    due_at     timestamptz NOT NULL DEFAULT now(),
    created_at timestamptz NOT NULL DEFAULT now(),
    delivered_at timestamptz,
    FOREIGN KEY (notice_id, revision) REFERENCES notice_revisions (notice_id, revision),
    UNIQUE (notice_id, revision, channel, target)
);
CREATE INDEX outbox_due ON outbox (due_at) WHERE state = 'pending';

-- The state of each episode (rule, group) the engine has evaluated.
CREATE TABLE episodes (
    rule         text NOT NULL,
    group_key    text NOT NULL,
    group_labels jsonb NOT NULL,
    notice_id    text NOT NULL,             -- '' before its first revision
    started_at   bigint NOT NULL,           -- ms
    state        jsonb NOT NULL,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (rule, group_key)
);

-- The checkpoint: facts up to last_fact_id are evaluated, the engine's clock
-- (ms of event time) is clock. generation fences a stale leader: each commit
-- names the generation it read and bumps it.
CREATE TABLE engine_state (
    id           int PRIMARY KEY CHECK (id = 1),
    last_fact_id bigint NOT NULL DEFAULT 0,
    clock        bigint,                    -- ms; NULL before the first fact
    generation   bigint NOT NULL DEFAULT 0,
    leader       text,
    updated_at   timestamptz NOT NULL DEFAULT now()
);
INSERT INTO engine_state (id) VALUES (1);

-- Rebuilding the windows reads facts by event time.
CREATE INDEX facts_by_time ON facts (event_time, id);

-- One checkpoint of the engine in one statement (one transaction, one round
-- trip): c = {generation, last_fact_id, clock, leader, episodes: [...],
-- revisions: [...]}. Raises sn_fenced when another leader committed since
-- generation was read.
CREATE FUNCTION engine_commit(c jsonb) RETURNS bigint
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
           (r->>'issued_at')::timestamptz, r - 'group_key' - 'started_at'
      FROM jsonb_array_elements(c->'revisions') WITH ORDINALITY AS t(r, ord)
     ORDER BY r->>'id', ord DESC
        ON CONFLICT (id) DO UPDATE
       SET revision = EXCLUDED.revision, status = EXCLUDED.status, severity = EXCLUDED.severity,
           issued_at = EXCLUDED.issued_at, body = EXCLUDED.body
     WHERE n.revision < EXCLUDED.revision;

    INSERT INTO notice_revisions (notice_id, revision, status, severity, issued_at, body)
    SELECT r->>'id', (r->>'revision')::int, r->>'status', r->>'severity',
           (r->>'issued_at')::timestamptz, r - 'group_key' - 'started_at'
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

-- The engine reads facts in id order and remembers the last id it evaluated,
-- so ids must become visible in ascending order: a batch that took ids
-- 100-110 must not commit after one that took 111-120 was read. Batches of
-- every process therefore take their ids, and commit, one at a time (the lock
-- is held until the end of the transaction; group commit keeps them few).
CREATE FUNCTION ingest_batch_in_order(batch jsonb) RETURNS TABLE (idx int, outcome text)
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('sn-broker facts order'));
    RETURN QUERY SELECT b.idx, b.outcome FROM ingest_batch(batch) AS b;
END
$$;
