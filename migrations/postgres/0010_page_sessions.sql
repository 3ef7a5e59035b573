-- Customers signed in to the hosted consent screen and dashboard. The browser holds a random
-- session id in an HttpOnly cookie; only its SHA-256 is stored, so a database read cannot
-- sign anyone in. Each session carries the CSRF token its forms must echo. Expired rows are
-- deleted as new sessions start.
CREATE TABLE page_sessions (
    id_hash     TEXT PRIMARY KEY,
    customer_id TEXT NOT NULL,
    csrf_token  TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL
);
CREATE INDEX page_sessions_expiry ON page_sessions (expires_at);
CREATE INDEX page_sessions_customer ON page_sessions (customer_id);
