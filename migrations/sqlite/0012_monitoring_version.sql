-- Every monitoring write for a customer (a batch of transactions, an alert resolved) checks
-- and bumps this, so two never interleave: each scores against what the other wrote.
ALTER TABLE customers ADD COLUMN monitoring_version INTEGER NOT NULL DEFAULT 0;
