-- Ingested events, the reviews they carry, the facts rules see, and what came
-- in through Kafka but could not be accepted.

-- Every accepted event, as received (normalised to structured mode). (source,
-- event_id) is the idempotency key; content_sha256 tells a duplicate from a
-- conflicting re-use of the key.
CREATE TABLE events (
    seq            bigserial PRIMARY KEY,
    source         text NOT NULL,
    event_id       text NOT NULL,
    content_sha256 text NOT NULL,
    envelope       jsonb NOT NULL,
    channel        text NOT NULL CHECK (channel IN ('http', 'kafka')),
    received_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (source, event_id)
);

-- The current version of each review; an amended review (same review_id, new
-- event) replaces it and bumps version.
CREATE TABLE reviews (
    jurisdiction text NOT NULL,
    review_id    text NOT NULL,
    version      int NOT NULL DEFAULT 1,
    event_seq    bigint NOT NULL REFERENCES events (seq),
    finalized_at timestamptz NOT NULL,
    data         jsonb NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (jurisdiction, review_id)
);

-- One row per improvement opportunity and per family need, with the labels a
-- rule can match. Facts of an amended version are retracted, not deleted, so
-- that the rule engine can replay history in order.
CREATE TABLE facts (
    id             bigserial PRIMARY KEY,
    event_seq      bigint NOT NULL REFERENCES events (seq),
    jurisdiction   text NOT NULL,
    review_id      text NOT NULL,
    review_version int NOT NULL,
    event_time     timestamptz NOT NULL,
    kind           text NOT NULL CHECK (kind IN ('improvement_opportunity', 'family_need')),
    theme          text,
    subtheme       text,
    partner        text,
    seips_domain   text,
    priority       text,
    incident_type  text NOT NULL,
    cause          text NOT NULL,
    age_band       text NOT NULL,
    need           text,
    retracted_at   timestamptz
);
CREATE INDEX facts_live_by_time ON facts (event_time) WHERE retracted_at IS NULL;
CREATE INDEX facts_live_by_review ON facts (jurisdiction, review_id) WHERE retracted_at IS NULL;

-- Kafka messages that failed validation: kept with their errors, never dropped.
CREATE TABLE quarantine (
    id          bigserial PRIMARY KEY,
    topic       text NOT NULL,
    partition   int NOT NULL,
    "offset"    bigint NOT NULL,
    message_key bytea,
    headers     jsonb NOT NULL DEFAULT '[]',
    payload     bytea,
    status      int NOT NULL,
    errors      jsonb NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (topic, partition, "offset")
);

-- Stores a batch of validated events in one statement (one transaction, one
-- round trip): group commit. Each item: source, id, hash, channel, envelope,
-- jurisdiction, review_id, finalized_at, facts (array of label objects).
-- Returns one outcome per item, in order: accepted, duplicate or conflict.
CREATE FUNCTION ingest_batch(batch jsonb) RETURNS TABLE (idx int, outcome text)
LANGUAGE plpgsql AS $$
DECLARE
    item     jsonb;
    n        int := 0;
    new_seq  bigint;
    existing text;
    ver      int;
    accepted int := 0;
BEGIN
    FOR item IN SELECT value FROM jsonb_array_elements(batch) LOOP
        idx := n;
        n := n + 1;
        INSERT INTO events (source, event_id, content_sha256, envelope, channel)
        VALUES (item->>'source', item->>'id', item->>'hash', item->'envelope', item->>'channel')
        ON CONFLICT (source, event_id) DO NOTHING
        RETURNING seq INTO new_seq;
        IF new_seq IS NULL THEN
            SELECT e.content_sha256 INTO existing FROM events e
             WHERE e.source = item->>'source' AND e.event_id = item->>'id';
            outcome := CASE WHEN existing = item->>'hash' THEN 'duplicate' ELSE 'conflict' END;
            RETURN NEXT;
            CONTINUE;
        END IF;
        INSERT INTO reviews AS r (jurisdiction, review_id, event_seq, finalized_at, data)
        VALUES (item->>'jurisdiction', item->>'review_id', new_seq,
                (item->>'finalized_at')::timestamptz, item->'envelope'->'data')
        ON CONFLICT (jurisdiction, review_id) DO UPDATE
            SET version = r.version + 1, event_seq = EXCLUDED.event_seq,
                finalized_at = EXCLUDED.finalized_at, data = EXCLUDED.data, updated_at = now()
        RETURNING r.version INTO ver;
        IF ver > 1 THEN
            UPDATE facts f SET retracted_at = now()
             WHERE f.jurisdiction = item->>'jurisdiction' AND f.review_id = item->>'review_id'
               AND f.retracted_at IS NULL;
        END IF;
        INSERT INTO facts (event_seq, jurisdiction, review_id, review_version, event_time, kind,
                           theme, subtheme, partner, seips_domain, priority, incident_type, cause,
                           age_band, need)
        SELECT new_seq, item->>'jurisdiction', item->>'review_id', ver,
               (item->>'finalized_at')::timestamptz, x.kind, x.theme, x.subtheme, x.partner,
               x.seips_domain, x.priority, x.incident_type, x.cause, x.age_band, x.need
          FROM jsonb_to_recordset(item->'facts') AS x(kind text, theme text, subtheme text,
               partner text, seips_domain text, priority text, incident_type text, cause text,
               age_band text, need text);
        accepted := accepted + 1;
        outcome := 'accepted';
        RETURN NEXT;
    END LOOP;
    IF accepted > 0 THEN
        PERFORM pg_notify('sn_facts', accepted::text);
    END IF;
END
$$;
