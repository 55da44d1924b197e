-- Delivery: subscriptions and silences, the outbox rows a notice revision
-- fans out to (written by a trigger in the transaction that stores the
-- revision: nothing stored is left unpublished), claims with a lease so that
-- several processes dispatch, and every attempt recorded.

-- Label matchers over a notice, evaluated by the database so that the fan-out
-- is part of the commit. matchers: [{"name", "op", "value"}] as the broker
-- parsed them (it refuses what it cannot parse or what costs too much);
-- labels: {"name": "value" or ["value", ...]}. A matcher on a label with
-- several values (jurisdiction) holds when = or =~ holds for one of them, and
-- != or !~ for all of them. A regex matches the whole value.
CREATE FUNCTION sn_matches(matchers jsonb, labels jsonb) RETURNS boolean
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    m        jsonb;
    vals     jsonb;
    v        text;
    hit      boolean;
    positive boolean;
BEGIN
    FOR m IN SELECT * FROM jsonb_array_elements(matchers) LOOP
        vals := labels -> (m->>'name');
        IF vals IS NULL OR jsonb_typeof(vals) = 'null' THEN
            vals := '[""]';
        ELSIF jsonb_typeof(vals) <> 'array' THEN
            vals := jsonb_build_array(vals);
        END IF;
        IF jsonb_array_length(vals) = 0 THEN
            vals := '[""]';
        END IF;
        positive := m->>'op' IN ('=', '=~');
        hit := false;
        FOR v IN SELECT jsonb_array_elements_text(vals) LOOP
            IF (m->>'op' IN ('=', '!=') AND v = m->>'value')
               OR (m->>'op' IN ('=~', '!~') AND v ~ ('^(?:' || (m->>'value') || ')$')) THEN
                hit := true;
                EXIT;
            END IF;
        END LOOP;
        IF hit <> positive THEN
            RETURN false;
        END IF;
    END LOOP;
    RETURN true;
END
$$;

-- 1 when every regex of matchers compiles here too (the broker checks them
-- with POSIX regcomp first).
CREATE FUNCTION sn_matchers_valid(matchers jsonb) RETURNS boolean
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    m jsonb;
BEGIN
    FOR m IN SELECT * FROM jsonb_array_elements(matchers) LOOP
        IF m->>'op' IN ('=~', '!~') THEN
            PERFORM '' ~ ('^(?:' || (m->>'value') || ')$');
        END IF;
    END LOOP;
    RETURN true;
EXCEPTION WHEN invalid_regular_expression THEN
    RETURN false;
END
$$;

-- What a subscription's filter and a silence's matchers see of a revision:
-- its group labels, severity, rule, status, and jurisdiction = the
-- jurisdictions the notice names (never one configured as unnamed).
CREATE FUNCTION sn_notice_labels(body jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$
    SELECT COALESCE(body->'group', '{}'::jsonb)
           || jsonb_build_object('severity', body->>'severity', 'rule', body->>'rule',
                                 'status', body->>'status',
                                 'jurisdiction', COALESCE(body->'jurisdictions', '[]'::jsonb))
$$;

CREATE TABLE subscriptions (
    id          bigserial PRIMARY KEY,
    subscriber  text NOT NULL,              -- a jurisdiction code or a leadership group
    channel     text NOT NULL CHECK (channel IN ('webhook', 'email')),
    target      text NOT NULL,              -- URL or address
    filter      jsonb NOT NULL,             -- the matcher strings as given
    matchers    jsonb NOT NULL CHECK (sn_matchers_valid(matchers)),
    mode        text NOT NULL CHECK (mode IN ('immediate', 'digest')),
    schedule    text,
    secret      text,                       -- webhooks: whsec_...; needed to sign, so not hashed
    previous_secret text,                   -- still signs until previous_secret_until
    previous_secret_until timestamptz,
    enabled     boolean NOT NULL DEFAULT true,
    disabled_reason text,
    created_by  bigint,                     -- token id
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    deleted_at  timestamptz
);
CREATE INDEX subscriptions_live ON subscriptions (id) WHERE deleted_at IS NULL AND enabled;

CREATE TABLE silences (
    id         bigserial PRIMARY KEY,
    matchers   jsonb NOT NULL CHECK (sn_matchers_valid(matchers)),
    filter     jsonb NOT NULL,              -- the matcher strings as given
    starts_at  timestamptz NOT NULL,
    ends_at    timestamptz NOT NULL,
    comment    text NOT NULL,
    created_by text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    CHECK (ends_at > starts_at)
);

ALTER TABLE outbox
    ADD COLUMN subscription_id bigint REFERENCES subscriptions (id),
    ADD COLUMN claimed_by int,              -- backend pid of the dispatcher holding it
    ADD COLUMN last_error text,
    DROP CONSTRAINT outbox_state_check,
    ADD CONSTRAINT outbox_state_check
        CHECK (state IN ('pending', 'delivered', 'dead', 'silenced', 'suppressed', 'cancelled')),
    DROP CONSTRAINT outbox_notice_id_revision_channel_target_key;
CREATE UNIQUE INDEX outbox_once ON outbox (notice_id, revision, channel, target, subscription_id)
    NULLS NOT DISTINCT;
CREATE INDEX outbox_silenced ON outbox (id) WHERE state = 'silenced';
-- a claim reads the due rows in (due_at, id) order and stops: every row of one
-- commit shares its due_at, which the due_at index alone would sort
DROP INDEX outbox_due;
CREATE INDEX outbox_due ON outbox (due_at, id) WHERE state = 'pending';
CREATE INDEX outbox_dead ON outbox (id) WHERE state = 'dead';
CREATE INDEX outbox_by_subscription ON outbox (subscription_id, id);

CREATE TABLE delivery_attempts (
    id          bigserial PRIMARY KEY,
    outbox_id   bigint NOT NULL REFERENCES outbox (id),
    attempt     int NOT NULL,
    started_at  timestamptz NOT NULL,
    latency_ms  double precision NOT NULL,
    status_code int,                        -- HTTP status or SMTP reply code
    error       text,
    outcome     text NOT NULL CHECK (outcome IN ('delivered', 'retry', 'dead', 'gone'))
);
CREATE INDEX delivery_attempts_by_outbox ON delivery_attempts (outbox_id, id);

-- The fan-out: one outbox row per live immediate subscription whose filter
-- holds, held back ('silenced') while an active silence matches.
CREATE FUNCTION outbox_fan_out() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    labels jsonb := sn_notice_labels(NEW.body);
    held   boolean;
BEGIN
    SELECT EXISTS (SELECT 1 FROM silences s
                    WHERE s.starts_at <= now() AND s.ends_at > now()
                      AND sn_matches(s.matchers, labels))
      INTO held;
    INSERT INTO outbox (notice_id, revision, channel, target, subscription_id, state)
    SELECT NEW.notice_id, NEW.revision, s.channel, s.target, s.id,
           CASE WHEN held THEN 'silenced' ELSE 'pending' END
      FROM subscriptions s
     WHERE s.deleted_at IS NULL AND s.enabled AND s.mode = 'immediate'
       AND sn_matches(s.matchers, labels);
    RETURN NULL;
END
$$;
CREATE TRIGGER notice_revisions_fan_out AFTER INSERT ON notice_revisions
    FOR EACH ROW EXECUTE FUNCTION outbox_fan_out();

-- Claims up to max_rows due deliveries for the calling connection: each is
-- leased (due_at moves lease ahead, so no other process takes it meanwhile)
-- and its attempt counted. A delivery whose claimer's connection is gone (the
-- process died) is due again at once. busy: targets not to claim now (at
-- their concurrency limit, or an open circuit breaker); per_target: at most
-- that many of one webhook or email target per claim; with_kafka false
-- leaves Kafka deliveries alone (the producer is down).
CREATE FUNCTION outbox_claim(max_rows int, busy text[], per_target int, lease_ms bigint,
                             with_kafka boolean)
RETURNS TABLE (id bigint, notice_id text, revision int, channel text, target text,
               subscription_id bigint, attempts int, body jsonb, secrets text)
LANGUAGE sql AS $$
    WITH candidates AS (
        SELECT o.id, o.channel, o.target, o.due_at
          FROM outbox o
         WHERE o.state = 'pending'
           AND (o.due_at <= now()
                OR (o.claimed_by IS NOT NULL
                    AND NOT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.pid = o.claimed_by)))
           AND NOT (o.target = ANY (busy))
           -- a paused (disabled) subscription's deliveries wait
           AND (o.subscription_id IS NULL
                OR EXISTS (SELECT 1 FROM subscriptions s WHERE s.id = o.subscription_id AND s.enabled))
           AND (with_kafka OR o.channel <> 'kafka')
         ORDER BY o.due_at, o.id
         LIMIT max_rows * 4
           FOR UPDATE SKIP LOCKED
    ), picked AS (
        SELECT c.id FROM (
            SELECT c.id, c.channel, c.due_at,
                   row_number() OVER (PARTITION BY c.channel, c.target ORDER BY c.due_at, c.id) AS n
              FROM candidates c) c
         WHERE c.channel = 'kafka' OR c.n <= per_target
         ORDER BY c.due_at, c.id
         LIMIT max_rows
    )
    UPDATE outbox o
       SET due_at = now() + lease_ms * interval '1 millisecond',
           attempts = o.attempts + 1,
           claimed_by = pg_backend_pid()
      FROM picked p
     WHERE o.id = p.id
    RETURNING o.id, o.notice_id, o.revision, o.channel, o.target, o.subscription_id, o.attempts,
              (SELECT r.body FROM notice_revisions r
                WHERE r.notice_id = o.notice_id AND r.revision = o.revision),
              (SELECT concat_ws(' ', s.secret,
                                CASE WHEN s.previous_secret_until > now() THEN s.previous_secret END)
                 FROM subscriptions s WHERE s.id = o.subscription_id);
$$;

-- Records attempts: rs = [{id, attempt, started_at (ms), latency_ms,
-- status_code, error, outcome, retry_in_ms}]. outcome: delivered; retry (due
-- again in retry_in_ms); dead (dead-lettered); gone (the receiver answered
-- 410: the subscription is disabled and its waiting deliveries cancelled).
CREATE FUNCTION outbox_record(rs jsonb) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO delivery_attempts (outbox_id, attempt, started_at, latency_ms, status_code, error,
                                   outcome)
    SELECT (r->>'id')::bigint, (r->>'attempt')::int,
           to_timestamp((r->>'started_at')::double precision / 1000),
           (r->>'latency_ms')::double precision, (r->>'status_code')::int, r->>'error',
           r->>'outcome'
      FROM jsonb_array_elements(rs) AS r;

    UPDATE outbox o
       SET state = CASE r->>'outcome' WHEN 'delivered' THEN 'delivered'
                                      WHEN 'retry' THEN 'pending' ELSE 'dead' END,
           delivered_at = CASE WHEN r->>'outcome' = 'delivered' THEN now() END,
           due_at = CASE WHEN r->>'outcome' = 'retry'
                         THEN now() + (r->>'retry_in_ms')::bigint * interval '1 millisecond'
                         ELSE o.due_at END,
           last_error = r->>'error',
           claimed_by = NULL
      FROM jsonb_array_elements(rs) AS r
     WHERE o.id = (r->>'id')::bigint AND o.state = 'pending';

    WITH gone AS (
        UPDATE subscriptions s
           SET enabled = false, disabled_reason = r->>'error', updated_at = now()
          FROM jsonb_array_elements(rs) AS r, outbox o
         WHERE r->>'outcome' = 'gone' AND o.id = (r->>'id')::bigint AND s.id = o.subscription_id
        RETURNING s.id
    )
    UPDATE outbox o
       SET state = 'cancelled', last_error = 'subscription disabled: its target answered 410 Gone',
           claimed_by = NULL
      FROM gone
     WHERE o.subscription_id = gone.id AND o.state IN ('pending', 'silenced');
END
$$;

-- Deliveries held by silences that no longer hold: per notice and
-- subscription the latest is delivered if its notice is still active (not
-- resolved), as Alertmanager does when a silence expires; the rest are
-- suppressed. Returns how many were released.
CREATE FUNCTION outbox_release_silenced() RETURNS int
LANGUAGE plpgsql AS $$
DECLARE
    released int;
BEGIN
    WITH free AS (
        SELECT o.id, o.notice_id, o.subscription_id, o.revision
          FROM outbox o
          JOIN notice_revisions r ON r.notice_id = o.notice_id AND r.revision = o.revision
         WHERE o.state = 'silenced'
           AND NOT EXISTS (SELECT 1 FROM silences s
                            WHERE s.starts_at <= now() AND s.ends_at > now()
                              AND sn_matches(s.matchers, sn_notice_labels(r.body)))
           FOR UPDATE OF o SKIP LOCKED
    ), latest AS (
        SELECT DISTINCT ON (f.notice_id, f.subscription_id) f.id
          FROM free f
         ORDER BY f.notice_id, f.subscription_id, f.revision DESC
    )
    UPDATE outbox o
       SET state = CASE WHEN o.id IN (SELECT id FROM latest) AND n.status <> 'resolved'
                        THEN 'pending' ELSE 'suppressed' END,
           due_at = now()
      FROM free f, notices n
     WHERE o.id = f.id AND n.id = o.notice_id;
    GET DIAGNOSTICS released = ROW_COUNT;
    RETURN released;
END
$$;
