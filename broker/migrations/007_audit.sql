-- The audit log (README, "Audit log"): one row per API call that reads
-- review data or changes the configuration, written by broker/audit_http.c
-- after the reply. Who (the token's id and role, never the token), what (the
-- route pattern, the ids it touched, never a body or free text), the status
-- of the reply, and when the request was received.
CREATE TABLE audit_log (
    id           bigserial PRIMARY KEY,
    at           timestamptz NOT NULL,
    who          text NOT NULL,   -- 'token:12'; a certificate subject, for mTLS, later
    token_id     bigint,          -- tokens.id
    role         text,
    jurisdiction text,            -- the caller's; NULL for an admin
    method       text NOT NULL,
    route        text NOT NULL,   -- the pattern: /v1/subscriptions/{id}
    action       text NOT NULL,   -- review.read, token.create, ...
    resource     jsonb NOT NULL DEFAULT '{}',
    status       integer NOT NULL,
    peer         text             -- the client's address
);
CREATE INDEX audit_log_at ON audit_log (at);
CREATE INDEX audit_log_token ON audit_log (token_id, id);

-- Append-only: no route changes an entry, and the database refuses UPDATE,
-- DELETE and TRUNCATE. The one way out, for a retention job to come: a
-- transaction that sets sn.audit_retention (SET LOCAL sn.audit_retention =
-- '400 days') may delete the rows older than that, and no others. (The
-- table's owner can still drop the trigger: against that, give the broker a
-- role that does not own the table.)
CREATE FUNCTION audit_log_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    retention interval;
BEGIN
    IF TG_OP = 'DELETE' THEN
        retention := nullif(current_setting('sn.audit_retention', true), '')::interval;
        IF retention IS NOT NULL AND OLD.at < now() - retention THEN
            RETURN OLD;
        END IF;
    END IF;
    RAISE EXCEPTION 'audit_log is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'entries older than sn.audit_retention may be deleted (README, Audit log)';
END
$$;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();
