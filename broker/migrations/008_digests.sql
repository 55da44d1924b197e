-- Digests (README, "Digests"): a subscription in mode digest gets one summary
-- per period of its schedule. Each is stored here, keyed by (subscription,
-- period start): whichever process, retry or restart computes a period again,
-- the second insert does nothing, so a period is never sent twice. A digest
-- that is sent gets its outbox row in the same statement, and goes out like a
-- notice (retries, dead letters, the same webhook-id on a repeat).

ALTER TABLE subscriptions
    ADD COLUMN skip_empty boolean NOT NULL DEFAULT false,
    -- digest periods are due from here on: the creation, or the change to
    -- mode digest or to another schedule
    ADD COLUMN digest_since timestamptz NOT NULL DEFAULT now();

CREATE TABLE digests (
    id              bigserial PRIMARY KEY,
    subscription_id bigint NOT NULL REFERENCES subscriptions (id),
    period_start    timestamptz NOT NULL,
    period_end      timestamptz NOT NULL,
    nothing_new     boolean NOT NULL,
    sent            boolean NOT NULL,   -- false: nothing new, and the subscription skips those
    message         jsonb,              -- {subject, text, html, event}; NULL when not sent
    created_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (subscription_id, period_start),
    CHECK (period_end > period_start),
    CHECK (sent = (message IS NOT NULL))
);

-- a digest reads the revisions issued in its period
CREATE INDEX notice_revisions_by_issued ON notice_revisions (issued_at);

-- An outbox row carries a notice revision or a digest.
ALTER TABLE outbox
    ALTER COLUMN notice_id DROP NOT NULL,
    ALTER COLUMN revision DROP NOT NULL,
    ADD COLUMN digest_id bigint REFERENCES digests (id),
    ADD CONSTRAINT outbox_notice_or_digest
        CHECK ((digest_id IS NULL) = (notice_id IS NOT NULL AND revision IS NOT NULL));
-- the index of 005, for notice rows only (digest rows have no notice, and
-- NULLS NOT DISTINCT would make two digests of one subscription collide)
DROP INDEX outbox_once;
CREATE UNIQUE INDEX outbox_once ON outbox (notice_id, revision, channel, target, subscription_id)
    NULLS NOT DISTINCT WHERE digest_id IS NULL;
CREATE UNIQUE INDEX outbox_digest_once ON outbox (digest_id) WHERE digest_id IS NOT NULL;

-- Stores one computed digest and, when it is to be sent, its outbox row, in
-- one transaction. Returns the digest's id, or NULL when the period was
-- already stored (by this or another process) or the subscription is gone,
-- paused or no longer a digest: then nothing is written.
CREATE FUNCTION digest_store(sub bigint, p_start timestamptz, p_end timestamptz,
                             p_nothing_new boolean, p_send boolean, p_message jsonb)
RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    s   subscriptions;
    did bigint;
BEGIN
    SELECT * INTO s FROM subscriptions
     WHERE id = sub AND deleted_at IS NULL AND enabled AND mode = 'digest';
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    INSERT INTO digests (subscription_id, period_start, period_end, nothing_new, sent, message)
    VALUES (sub, p_start, p_end, p_nothing_new, p_send, CASE WHEN p_send THEN p_message END)
        ON CONFLICT (subscription_id, period_start) DO NOTHING
    RETURNING id INTO did;
    IF did IS NOT NULL AND p_send THEN
        INSERT INTO outbox (digest_id, channel, target, subscription_id)
        VALUES (did, s.channel, s.target, sub);
        PERFORM pg_notify('sn_outbox', 'digest');
    END IF;
    RETURN did;
END
$$;

-- outbox_claim of 005, also claiming digests: a digest row has no notice
-- (notice_id and revision NULL), its body is the digest's message, and the
-- new last column names the digest (NULL for a notice). The return type
-- changes, so the function is dropped and made again (CREATE OR REPLACE
-- cannot add a column); callers read columns by position, so a process of the
-- previous version reads the first nine as before.
DROP FUNCTION outbox_claim(int, text[], int, bigint, boolean);
CREATE FUNCTION outbox_claim(max_rows int, busy text[], per_target int, lease_ms bigint,
                             with_kafka boolean)
RETURNS TABLE (id bigint, notice_id text, revision int, channel text, target text,
               subscription_id bigint, attempts int, body jsonb, secrets text, digest_id bigint)
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
              CASE WHEN o.digest_id IS NULL
                   THEN (SELECT r.body FROM notice_revisions r
                          WHERE r.notice_id = o.notice_id AND r.revision = o.revision)
                   ELSE (SELECT d.message FROM digests d WHERE d.id = o.digest_id) END,
              (SELECT concat_ws(' ', s.secret,
                                CASE WHEN s.previous_secret_until > now() THEN s.previous_secret END)
                 FROM subscriptions s WHERE s.id = o.subscription_id),
              o.digest_id;
$$;
