-- Foundation: bank-facing admin API keys and the hash-chained audit log.
-- Times are Unix epoch milliseconds (BIGINT) on both backends; ids are prefixed random strings.

-- Admin API keys. Only the SHA-256 of each key is stored: keys are 256-bit random values, so a
-- fast hash is safe and lets authentication use the unique index. `prefix` is the first
-- characters of the key, shown in listings so operators can tell keys apart.
CREATE TABLE admin_keys (
    id           TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    prefix       TEXT NOT NULL,
    key_hash     TEXT NOT NULL UNIQUE,
    created_at   BIGINT NOT NULL,
    last_used_at BIGINT,
    revoked_at   BIGINT
);
-- A name identifies one active key at a time; revoked keys keep their name for history.
CREATE UNIQUE INDEX admin_keys_active_name ON admin_keys (name) WHERE revoked_at IS NULL;

-- The audit log: one row per security decision, never PII values. `seq` is gap-free from 1 and
-- each row carries the previous row's hash, so deletions and edits are detectable.
CREATE TABLE audit (
    seq            BIGINT PRIMARY KEY,
    id             TEXT NOT NULL UNIQUE,
    occurred_at    BIGINT NOT NULL,
    actor_type     TEXT NOT NULL,
    actor_id       TEXT NOT NULL,
    action         TEXT NOT NULL,
    resource_type  TEXT,
    resource_id    TEXT,
    outcome        TEXT NOT NULL CHECK (outcome IN ('success', 'denied', 'failure')),
    reason         TEXT,
    interaction_id TEXT,
    prev_hash      TEXT NOT NULL,
    hash           TEXT NOT NULL
);
CREATE INDEX audit_actor ON audit (actor_id, seq);
CREATE INDEX audit_action ON audit (action, seq);
CREATE INDEX audit_resource ON audit (resource_type, resource_id, seq);
CREATE INDEX audit_interaction ON audit (interaction_id);
CREATE INDEX audit_occurred ON audit (occurred_at);

-- The chain head: last seq and its hash. Appenders lock this one row first (UPDATE … RETURNING),
-- which serialises them across nodes, and `obgate audit verify` compares it with the last row
-- to detect a truncated tail.
CREATE TABLE audit_head (
    id        INTEGER PRIMARY KEY CHECK (id = 1),
    seq       BIGINT NOT NULL,
    last_hash TEXT NOT NULL
);
INSERT INTO audit_head (id, seq, last_hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');

-- Append-only: the database itself refuses edits, deletions and truncation of audit rows.
CREATE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit is append-only';
END
$$;
CREATE TRIGGER audit_no_update_delete BEFORE UPDATE OR DELETE ON audit
    FOR EACH ROW EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit
    FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();
