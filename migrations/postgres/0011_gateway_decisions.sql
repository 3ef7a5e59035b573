-- Gateway decisions: one compact row per gateway request (allowed, or denied with its reason),
-- sealed into the audit hash chain a batch at a time. Each batch the access log writes is one
-- `gateway.decisions` row in `audit` whose `resource_id` names the batch's first and last
-- decision seq and whose `reason` is the SHA-256 of those rows, so `obgate audit verify` proves
-- every decision as it proves every audit row. Before this table each decision was a full audit
-- row (a UUID, a hash and seven index entries), the largest cost of a gateway read that obgate
-- controls. `seq` is gap-free from 1; the head counts the decisions sealed so far.
CREATE TABLE gateway_decisions (
    seq            BIGINT PRIMARY KEY,
    sealed_by      BIGINT NOT NULL,
    occurred_at    BIGINT NOT NULL,
    client_id      TEXT,
    consent_id     TEXT,
    outcome        TEXT NOT NULL CHECK (outcome IN ('success', 'denied')),
    reason         TEXT NOT NULL,
    path           TEXT NOT NULL,
    interaction_id TEXT
);
-- Which TPP read under which consent (and so whose data): the compliance questions.
CREATE INDEX gateway_decisions_consent ON gateway_decisions (consent_id, seq)
    WHERE consent_id IS NOT NULL;
CREATE INDEX gateway_decisions_client ON gateway_decisions (client_id, seq)
    WHERE client_id IS NOT NULL;

ALTER TABLE audit_head ADD COLUMN decisions BIGINT NOT NULL DEFAULT 0;

-- Append-only, as `audit` is (the same function refuses the change).
CREATE TRIGGER gateway_decisions_no_update_delete BEFORE UPDATE OR DELETE ON gateway_decisions
    FOR EACH ROW EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER gateway_decisions_no_truncate BEFORE TRUNCATE ON gateway_decisions
    FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();
