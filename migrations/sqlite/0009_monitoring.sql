-- Ongoing monitoring: the customer's transactions as the bank reports them, the alerts that
-- high-risk ones open, and the customer's risk rating (due diligence).
--
-- Amounts are exact integers in the currency's minor units. The counterparty is kept only as
-- a keyed hash of the id the bank sent (enough to tell a new counterparty from a known one);
-- its name is screened on arrival and never stored. A repeated (customer_id, transaction_id)
-- is ignored, never counted twice.
CREATE TABLE monitored_transactions (
    customer_id    TEXT NOT NULL REFERENCES customers (customer_id),
    transaction_id TEXT NOT NULL,
    booked_at      BIGINT NOT NULL,
    amount_minor   BIGINT NOT NULL CHECK (amount_minor > 0),
    currency       TEXT NOT NULL,
    direction      TEXT NOT NULL CHECK (direction IN ('credit', 'debit')),
    counterparty   TEXT NOT NULL,
    channel        TEXT NOT NULL,
    country        TEXT,
    ingested_at    BIGINT NOT NULL,
    PRIMARY KEY (customer_id, transaction_id)
);
CREATE INDEX monitored_transactions_by_time ON monitored_transactions (customer_id, booked_at);

-- An alert holds the customer's access while it is open and its action is `suspended`;
-- `previous_kyc_status` is what clearing it restores.
CREATE TABLE alerts (
    alert_id            TEXT PRIMARY KEY,
    customer_id         TEXT NOT NULL REFERENCES customers (customer_id),
    transaction_id      TEXT NOT NULL,
    risk_level          TEXT NOT NULL,
    score               INTEGER NOT NULL,
    reasons             TEXT NOT NULL,   -- JSON [{"rule", "detail"}]
    status              TEXT NOT NULL CHECK (status IN ('open', 'cleared', 'confirmed')),
    action              TEXT NOT NULL CHECK (action IN ('suspended', 'flagged')),
    previous_kyc_status TEXT,
    created_at          BIGINT NOT NULL,
    resolved_at         BIGINT,
    resolved_by         TEXT,
    resolution_note     TEXT
);
CREATE INDEX alerts_by_customer ON alerts (customer_id, created_at);
CREATE INDEX alerts_by_status ON alerts (status, created_at);

ALTER TABLE customers ADD COLUMN risk_rating TEXT;   -- low | medium | high; NULL until KYC passes
ALTER TABLE customers ADD COLUMN risk_factors TEXT;  -- JSON array of factor codes
ALTER TABLE customers ADD COLUMN risk_rated_at BIGINT;
