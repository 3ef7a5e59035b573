-- JWT signing keys of the authorization server.
-- A key is 'next' (published in the JWKS before it signs, so verifiers have it in time),
-- 'active' (signs new tokens) or 'retired' (kept for verification until every token it signed
-- has expired). At most one key is next and one is active.
CREATE TABLE signing_keys (
    kid          TEXT PRIMARY KEY,            -- RFC 7638 JWK thumbprint
    alg          TEXT NOT NULL CHECK (alg IN ('ES256', 'PS256')),
    state        TEXT NOT NULL CHECK (state IN ('next', 'active', 'retired')),
    public_jwk   TEXT NOT NULL,               -- the public JWK as published
    private_key  BLOB NOT NULL,               -- AES-256-GCM(nonce ‖ DER ‖ tag) under the key-encryption key, bound to kid
    created_at   BIGINT NOT NULL,
    activated_at BIGINT,
    retired_at   BIGINT
);
CREATE UNIQUE INDEX signing_keys_one_per_live_state ON signing_keys (state)
    WHERE state IN ('next', 'active');
