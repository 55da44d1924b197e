-- API tokens. Only the SHA-256 of a token is stored; the token itself is shown
-- once, when it is created.
CREATE TABLE tokens (
    id           bigserial PRIMARY KEY,
    role         text NOT NULL CHECK (role IN ('admin', 'emitter', 'subscriber')),
    jurisdiction text CHECK (jurisdiction ~ '^[A-Z]{2}(-[A-Z0-9]{1,12}){1,3}$'),
    name         text NOT NULL DEFAULT '',
    token_sha256 bytea NOT NULL UNIQUE CHECK (length(token_sha256) = 32),
    created_at   timestamptz NOT NULL DEFAULT now(),
    revoked_at   timestamptz,
    CHECK (role = 'admin' OR jurisdiction IS NOT NULL)
);
