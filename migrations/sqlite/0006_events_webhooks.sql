-- Domain events (the outbox) and their webhook delivery.
--
-- An event row is written in the same transaction as the state change it reports, together
-- with one delivery row per subscribed endpoint, so a committed change always gets its webhook
-- and a rolled-back one never does. The dispatcher claims due deliveries with a lease, so a
-- node that dies mid-delivery leaves them to be retried, always under the same event id.
CREATE TABLE events (
    id         TEXT PRIMARY KEY,      -- msg_…, the webhook-id header
    type       TEXT NOT NULL,
    payload    TEXT NOT NULL,         -- JSON: ids and statuses, never PII
    created_at BIGINT NOT NULL
);
CREATE INDEX events_created ON events (created_at);

CREATE TABLE webhook_endpoints (
    id              TEXT PRIMARY KEY,
    url             TEXT NOT NULL,
    events          TEXT NOT NULL,    -- ' type1 type2 ' (padded, for matching)
    secret          BLOB NOT NULL,    -- sealed under pii.key, bound to id
    created_at      BIGINT NOT NULL,
    disabled_at     BIGINT,
    disabled_reason TEXT,
    deleted_at      BIGINT
);

CREATE TABLE webhook_deliveries (
    event_id        TEXT NOT NULL REFERENCES events (id),
    endpoint_id     TEXT NOT NULL REFERENCES webhook_endpoints (id),
    state           TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'failed', 'abandoned')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    locked_until    BIGINT,
    last_status     INTEGER,
    last_error      TEXT,
    delivered_at    BIGINT,
    PRIMARY KEY (event_id, endpoint_id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (state, next_attempt_at);

-- Every delivery attempt, for the operator.
CREATE TABLE webhook_attempts (
    id           TEXT PRIMARY KEY,
    event_id     TEXT NOT NULL,
    endpoint_id  TEXT NOT NULL,
    attempted_at BIGINT NOT NULL,
    status_code  INTEGER,
    error        TEXT,
    duration_ms  BIGINT NOT NULL
);
CREATE INDEX webhook_attempts_endpoint ON webhook_attempts (endpoint_id, attempted_at);
