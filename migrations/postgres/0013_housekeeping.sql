-- Rows that stop mattering at a known time are deleted by the worker's housekeeping, found by
-- these indexes without scanning their tables: idempotency keys past their 24-hour window, and
-- authorization codes, authorization requests, access-token records and refresh tokens a day
-- past their expiry (revoked_tokens already has its index).
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);
CREATE INDEX authorization_codes_expiry ON authorization_codes (expires_at);
CREATE INDEX authorization_requests_expiry ON authorization_requests (request_expires_at);
CREATE INDEX consent_tokens_expiry ON consent_tokens (expires_at);
CREATE INDEX refresh_tokens_expiry ON refresh_tokens (expires_at);
