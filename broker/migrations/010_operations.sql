-- Operations: the processes that share this database, retention, and a
-- jurisdiction's export and purge of its data.

-- Every broker process records itself here every cluster.heartbeat (snctl
-- status). A row not refreshed for a day is dropped by the next heartbeat of
-- any process.
CREATE TABLE processes (
    id           text PRIMARY KEY,          -- host:pid:random, new at each start
    host         text NOT NULL,
    pid          int NOT NULL,
    version      text NOT NULL,
    http_address text NOT NULL,
    started_at   timestamptz NOT NULL DEFAULT now(),
    heartbeat_at timestamptz NOT NULL DEFAULT now(),
    stopped_at   timestamptz,               -- a clean shutdown
    leader       boolean NOT NULL DEFAULT false,
    detail       jsonb NOT NULL DEFAULT '{}' -- engine state, Kafka partitions and lag, ...
);

-- Retention, applied by the rule-engine leader every retention.interval. A
-- limit of 0 keeps everything of its kind. events_ms and facts_ms are never
-- below horizon_ms (the longest rule window, doubled for growth rules: what
-- the engine may still need); the caller checks, this function enforces it
-- too. Facts go only once evaluated (id <= last_fact_id) and once outside
-- every window of the engine's clock. A raw event goes with the review it
-- carries (the review is stored once, as its event's data). Returns the rows
-- deleted per table.
CREATE FUNCTION sn_retention(events_ms bigint, facts_ms bigint, attempts_ms bigint,
                             horizon_ms bigint) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    n_events   bigint := 0;
    n_reviews  bigint := 0;
    n_facts    bigint := 0;
    n_attempts bigint := 0;
    cutoff     timestamptz;
    evaluated  bigint;
    clock_ms   bigint;
BEGIN
    IF (events_ms > 0 AND events_ms < horizon_ms) OR (facts_ms > 0 AND facts_ms < horizon_ms) THEN
        RAISE EXCEPTION 'retention shorter than the longest rule window (% ms)', horizon_ms;
    END IF;
    IF events_ms > 0 THEN
        cutoff := now() - events_ms * interval '1 millisecond';
        DELETE FROM reviews r USING events e
         WHERE e.seq = r.event_seq AND e.received_at < cutoff;
        GET DIAGNOSTICS n_reviews = ROW_COUNT;
        DELETE FROM events WHERE received_at < cutoff;
        GET DIAGNOSTICS n_events = ROW_COUNT;
    END IF;
    IF facts_ms > 0 THEN
        SELECT last_fact_id, clock INTO evaluated, clock_ms FROM engine_state WHERE id = 1;
        cutoff := least(now() - facts_ms * interval '1 millisecond',
                        to_timestamp((coalesce(clock_ms, 0) - horizon_ms) / 1000.0));
        DELETE FROM facts WHERE event_time < cutoff AND id <= evaluated;
        GET DIAGNOSTICS n_facts = ROW_COUNT;
    END IF;
    IF attempts_ms > 0 THEN
        DELETE FROM delivery_attempts
         WHERE started_at < now() - attempts_ms * interval '1 millisecond';
        GET DIAGNOSTICS n_attempts = ROW_COUNT;
    END IF;
    RETURN jsonb_build_object('events', n_events, 'reviews', n_reviews, 'facts', n_facts,
                              'delivery_attempts', n_attempts);
END
$$;

-- The source a quarantined Kafka message claims: its ce_source header (binary
-- mode), else the "source" of its payload when that is a JSON object
-- (structured mode); NULL when it names none.
CREATE FUNCTION sn_quarantine_source(headers jsonb, payload bytea) RETURNS text
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    found text;
BEGIN
    SELECT h->>'value' INTO found FROM jsonb_array_elements(headers) h
     WHERE h->>'name' = 'ce_source' LIMIT 1;
    IF found IS NOT NULL OR payload IS NULL THEN
        RETURN found;
    END IF;
    BEGIN
        RETURN convert_from(payload, 'UTF8')::jsonb->>'source';
    EXCEPTION WHEN others THEN
        RETURN NULL; -- not UTF-8, not JSON, or not an object
    END;
END
$$;

-- Everything the broker holds that a jurisdiction submitted, one JSON object
-- a row: its events as received (the reviews in them, free text included),
-- its reviews' current versions, the facts taken from them, and its Kafka
-- messages that were refused (quarantine), as they came.
CREATE FUNCTION sn_jurisdiction_export(code text) RETURNS TABLE (line jsonb)
LANGUAGE sql STABLE AS $$
    SELECT line FROM (
        SELECT 1 AS part, e.seq AS ord,
               jsonb_build_object('record', 'event', 'source', e.source, 'id', e.event_id,
                                  'channel', e.channel, 'received_at', e.received_at,
                                  'event', e.envelope) AS line
          FROM events e WHERE e.source = 'urn:npcs:jurisdiction:' || code
        UNION ALL
        SELECT 2, r.event_seq,
               jsonb_build_object('record', 'review', 'jurisdiction', r.jurisdiction,
                                  'review_id', r.review_id, 'version', r.version,
                                  'finalized_at', r.finalized_at, 'created_at', r.created_at,
                                  'updated_at', r.updated_at)
          FROM reviews r WHERE r.jurisdiction = code
        UNION ALL
        SELECT 3, f.id, jsonb_build_object('record', 'fact') || to_jsonb(f) - 'event_seq'
          FROM facts f WHERE f.jurisdiction = code
        UNION ALL
        SELECT 4, q.id,
               jsonb_build_object('record', 'quarantined', 'topic', q.topic,
                                  'partition', q.partition, 'offset', q."offset",
                                  'received_at', q.received_at, 'status', q.status,
                                  'errors', q.errors, 'headers', q.headers,
                                  'key_base64', encode(q.message_key, 'base64'),
                                  'payload_base64', encode(q.payload, 'base64'))
          FROM quarantine q
         WHERE sn_quarantine_source(q.headers, q.payload) = 'urn:npcs:jurisdiction:' || code
    ) x ORDER BY part, ord
$$;

-- A purge deletes facts the engine's windows may hold: purges counts them, and
-- purges_corrected is the count the leader's state reflects (set by the
-- commit that follows a rebuild without those facts, which publishes the
-- lowered counts at once). Whichever process leads next finds a purge not
-- yet corrected in the checkpoint, so none is lost to a change of leader.
ALTER TABLE engine_state ADD COLUMN purges bigint NOT NULL DEFAULT 0,
                         ADD COLUMN purges_corrected bigint NOT NULL DEFAULT 0;

-- engine_commit() of 006, which also records c->'purges_corrected'.
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
           purges_corrected = greatest(purges_corrected,
                                       coalesce((c->>'purges_corrected')::bigint, 0)),
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

-- Deletes what sn_jurisdiction_export() gives, in one transaction, and tells
-- the rule-engine leader (NOTIFY sn_purge, and engine_state.purges) to
-- evaluate the notices again without those facts. Returns the rows deleted
-- per table.
CREATE FUNCTION sn_jurisdiction_purge(code text) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    n_events      bigint;
    n_reviews     bigint;
    n_facts       bigint;
    n_quarantined bigint;
BEGIN
    DELETE FROM facts WHERE jurisdiction = code;
    GET DIAGNOSTICS n_facts = ROW_COUNT;
    DELETE FROM reviews WHERE jurisdiction = code;
    GET DIAGNOSTICS n_reviews = ROW_COUNT;
    DELETE FROM events WHERE source = 'urn:npcs:jurisdiction:' || code;
    GET DIAGNOSTICS n_events = ROW_COUNT;
    DELETE FROM quarantine
     WHERE sn_quarantine_source(headers, payload) = 'urn:npcs:jurisdiction:' || code;
    GET DIAGNOSTICS n_quarantined = ROW_COUNT;
    IF n_facts > 0 THEN
        UPDATE engine_state SET purges = purges + 1 WHERE id = 1;
        PERFORM pg_notify('sn_purge', code);
    END IF;
    RETURN jsonb_build_object('events', n_events, 'reviews', n_reviews, 'facts', n_facts,
                              'quarantined', n_quarantined);
END
$$;

CREATE INDEX events_by_received ON events (received_at);
CREATE INDEX facts_by_jurisdiction ON facts (jurisdiction);
CREATE INDEX delivery_attempts_by_start ON delivery_attempts (started_at);

-- Deliveries waiting, the age of the oldest of them (seconds), and dead
-- letters: the outbox gauges of /metrics and of snctl status.
CREATE FUNCTION sn_outbox_health(OUT depth bigint, OUT oldest_seconds double precision,
                                 OUT dead bigint)
LANGUAGE sql STABLE AS $$
    SELECT (SELECT count(*) FROM outbox WHERE state = 'pending'),
           coalesce(extract(epoch FROM now() - (SELECT min(created_at) FROM outbox
                                                 WHERE state = 'pending')), 0)::double precision,
           (SELECT count(*) FROM outbox WHERE state = 'dead')
$$;
