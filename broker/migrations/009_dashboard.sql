-- Dashboard sessions (README, "Dashboard"): signing in through the form of
-- /dashboard/login makes one. The browser holds its random id in an HttpOnly
-- cookie; the database holds only the id's SHA-256, so that a copy of this
-- table signs nobody in. Any broker process finds a session, and one whose
-- token is revoked stops working at once (the lookup joins tokens).
CREATE TABLE dashboard_sessions (
    id_sha256  bytea PRIMARY KEY CHECK (length(id_sha256) = 32),
    token_id   bigint NOT NULL REFERENCES tokens (id),
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL    -- dashboard.session_lifetime after sign-in
);
-- expired sessions are deleted at the next sign-in
CREATE INDEX dashboard_sessions_expiry ON dashboard_sessions (expires_at);
