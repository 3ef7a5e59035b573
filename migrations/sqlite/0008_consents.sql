-- UK Open Banking account-access consents and the OAuth authorization flow around them.
--
-- A consent is created by a TPP (AwaitingAuthorisation), authorised by a customer whose KYC
-- passed (bound to that customer and the chosen accounts), or rejected; an authorised consent
-- can be revoked by the bank or the customer. A TPP's DELETE hides the consent from the TPP and
-- revokes it, but the row is kept for audit. `version` is bumped on every change: writers
-- update only the version they read.
CREATE TABLE consents (
    consent_id         TEXT PRIMARY KEY,
    client_id          TEXT NOT NULL REFERENCES oauth_clients (client_id),
    status             TEXT NOT NULL
        CHECK (status IN ('AwaitingAuthorisation', 'Authorised', 'Rejected', 'Revoked')),
    permissions        TEXT NOT NULL,     -- space-separated OB permission codes
    data               TEXT NOT NULL,     -- the request's Data object as accepted (JSON)
    risk               TEXT NOT NULL,     -- the request's Risk object (JSON)
    expiration_at      BIGINT,            -- ExpirationDateTime; NULL = open-ended
    customer_id        TEXT,              -- set when authorised
    account_ids        TEXT,              -- space-separated, set when authorised
    created_at         BIGINT NOT NULL,
    status_updated_at  BIGINT NOT NULL,
    authorisable_until BIGINT NOT NULL,
    authorised_at      BIGINT,
    deleted_at         BIGINT,            -- deleted by the TPP
    revoked_reason     TEXT,
    customer_ip        TEXT,              -- x-fapi-customer-ip-address at creation
    auth_date          TEXT,              -- x-fapi-auth-date at creation
    version            BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX consents_customer ON consents (customer_id, created_at);
CREATE INDEX consents_client ON consents (client_id, created_at);

-- Authorization requests: pushed (PAR, RFC 9126) or sent to /oauth2/authorize directly. The
-- request_uri and the challenge handed to the bank's consent UI are stored as SHA-256 hashes;
-- each is single-use.
CREATE TABLE authorization_requests (
    id                   TEXT PRIMARY KEY,
    request_uri_hash     TEXT UNIQUE,
    challenge_hash       TEXT UNIQUE,
    client_id            TEXT NOT NULL,
    redirect_uri         TEXT NOT NULL,
    state                TEXT,
    code_challenge       TEXT NOT NULL,
    scope                TEXT NOT NULL,
    consent_id           TEXT NOT NULL REFERENCES consents (consent_id),
    created_at           BIGINT NOT NULL,
    request_expires_at   BIGINT NOT NULL,
    challenge_expires_at BIGINT,
    used_at              BIGINT,
    decided_at           BIGINT
);

-- Authorization codes (hashes), single-use, bound to client, redirect URI, PKCE challenge and
-- consent. A second use revokes the token family issued from the first.
CREATE TABLE authorization_codes (
    code_hash      TEXT PRIMARY KEY,
    client_id      TEXT NOT NULL,
    redirect_uri   TEXT NOT NULL,
    code_challenge TEXT NOT NULL,
    consent_id     TEXT NOT NULL REFERENCES consents (consent_id),
    customer_id    TEXT NOT NULL,
    scope          TEXT NOT NULL,
    family_id      TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    expires_at     BIGINT NOT NULL,
    used_at        BIGINT
);

-- Refresh tokens (hashes), rotated on every use; all tokens of one authorization share a
-- family, revoked together when a used refresh token comes back.
CREATE TABLE refresh_tokens (
    token_hash  TEXT PRIMARY KEY,
    family_id   TEXT NOT NULL,
    client_id   TEXT NOT NULL,
    consent_id  TEXT NOT NULL REFERENCES consents (consent_id),
    customer_id TEXT NOT NULL,
    scope       TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    used_at     BIGINT,
    revoked_at  BIGINT
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_consent ON refresh_tokens (consent_id);

-- Access tokens issued under a consent, so revoking a family or a consent can put their ids
-- on the deny list.
CREATE TABLE consent_tokens (
    jti        TEXT PRIMARY KEY,
    consent_id TEXT NOT NULL,
    family_id  TEXT,
    client_id  TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX consent_tokens_consent ON consent_tokens (consent_id);
CREATE INDEX consent_tokens_family ON consent_tokens (family_id);
