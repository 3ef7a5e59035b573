-- TPP OAuth clients, named as RFC 7591 client metadata.
-- Secrets are stored only as argon2id PHC strings. A rotated-out secret stays valid until
-- previous_secret_expires_at (the rotation grace period). A disabled client is kept (audit,
-- history) but refused everywhere.
CREATE TABLE oauth_clients (
    client_id                  TEXT PRIMARY KEY,
    client_name                TEXT NOT NULL,
    redirect_uris              TEXT NOT NULL,   -- space-separated (URIs contain no spaces)
    grant_types                TEXT NOT NULL,   -- space-separated
    scope                      TEXT NOT NULL,   -- space-separated
    token_endpoint_auth_method TEXT NOT NULL
        CHECK (token_endpoint_auth_method IN ('client_secret_basic', 'client_secret_post', 'private_key_jwt')),
    jwks                       TEXT,            -- JSON, for private_key_jwt
    secret_hash                TEXT,
    previous_secret_hash       TEXT,
    previous_secret_expires_at BIGINT,
    created_at                 BIGINT NOT NULL,
    updated_at                 BIGINT NOT NULL,
    disabled_at                BIGINT
);
CREATE INDEX oauth_clients_created ON oauth_clients (created_at);
