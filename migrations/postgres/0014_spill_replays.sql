-- Spill files written into the audit log: one row per file, named by the SHA-256 of its bytes
-- and written in the same transaction as the file's decisions. A node that dies after that
-- commit and before it deletes the file finds the file again at its next start; the row tells
-- it the decisions are already logged, so they are not written twice (src/gateway/spill.rs).
CREATE TABLE spill_replays (
    digest      TEXT PRIMARY KEY,
    decisions   BIGINT NOT NULL,
    replayed_at BIGINT NOT NULL
);
