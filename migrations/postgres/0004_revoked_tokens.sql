-- Access tokens revoked before they expire (RFC 7009). A row is only needed until the token's
-- own expiry, after which verification refuses it anyway; expired rows may be purged.
CREATE TABLE revoked_tokens (
    jti        TEXT PRIMARY KEY,
    client_id  TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    revoked_at BIGINT NOT NULL
);
CREATE INDEX revoked_tokens_expiry ON revoked_tokens (expires_at);
