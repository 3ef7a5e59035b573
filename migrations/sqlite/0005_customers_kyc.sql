-- Customers (PSUs) and their KYC verification.
--
-- PII is never stored in clear. Each customer has a data key (a random AES-256 key, sealed under
-- pii.key and bound to the customer id); names, date of birth, addresses, SSN, phone and email
-- are sealed under that data key, again bound to the customer id. Erasure destroys the data key
-- and the sealed columns (crypto-shredding: copies in backups stay unreadable too).
-- ssn_hmac is a keyed hash of the normalised SSN, for duplicate detection without decrypting.
-- kyc_version is bumped on every KYC change: writers update only the version they read, so two
-- concurrent changes cannot both apply.
CREATE TABLE customers (
    customer_id    TEXT PRIMARY KEY,
    data_key       BLOB,              -- sealed data key; NULL once erased
    profile        BLOB,              -- sealed JSON: names, dob, addresses
    contact        BLOB,              -- sealed JSON: ssn, phone, email, ip (set by verification-kyc)
    ssn_hmac       TEXT,
    kyc_status     TEXT NOT NULL,
    kyc_version    BIGINT NOT NULL DEFAULT 0,
    kyc_reasons    TEXT,              -- JSON of per-check statuses (no PII)
    kyc_documents  TEXT,              -- JSON of requested documents and their state (no PII)
    kba_round      INTEGER NOT NULL DEFAULT 0,
    kba_questions  BLOB,              -- sealed JSON of the pending round, answer key included
    program_id     TEXT,
    kyc_reference  TEXT,              -- the verification's reference at the provider (a job id)
    kyc_started_at BIGINT,
    kyc_passed_at  BIGINT,
    kyc_updated_at BIGINT,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL,
    erased_at      BIGINT
);
CREATE INDEX customers_created ON customers (created_at);
CREATE INDEX customers_ssn_hmac ON customers (ssn_hmac);

-- Every KYC status change with its time and cause. Ids only; a reviewer's note is nulled on
-- erasure.
CREATE TABLE kyc_transitions (
    id          TEXT PRIMARY KEY,
    customer_id TEXT NOT NULL REFERENCES customers (customer_id),
    from_status TEXT NOT NULL,
    to_status   TEXT NOT NULL,
    cause       TEXT NOT NULL,
    actor_type  TEXT NOT NULL,
    actor_id    TEXT,
    note        TEXT,
    at          BIGINT NOT NULL
);
CREATE INDEX kyc_transitions_customer ON kyc_transitions (customer_id, at);

-- Durable work for the identity provider: a check runs after the 201 is answered, and a
-- restart mid-check resumes it (the lease expires) instead of losing it.
CREATE TABLE kyc_jobs (
    id           TEXT PRIMARY KEY,
    customer_id  TEXT NOT NULL REFERENCES customers (customer_id),
    kind         TEXT NOT NULL CHECK (kind IN ('verify', 'poll', 'documents')),
    provider_ref TEXT,
    kyc_version  BIGINT NOT NULL,     -- the customer's version when queued; stale jobs are dropped
    state        TEXT NOT NULL CHECK (state IN ('pending', 'done')),
    attempts     INTEGER NOT NULL DEFAULT 0,
    run_after    BIGINT NOT NULL,
    locked_until BIGINT,
    created_at   BIGINT NOT NULL,
    finished_at  BIGINT
);
CREATE INDEX kyc_jobs_due ON kyc_jobs (state, run_after);

-- Evidence documents, sealed under the customer's data key; never served back.
CREATE TABLE kyc_documents (
    id           TEXT PRIMARY KEY,
    customer_id  TEXT NOT NULL REFERENCES customers (customer_id),
    kind         TEXT NOT NULL,       -- government_id | proof_of_address | social_security_card
    doc_type     TEXT,
    side         TEXT NOT NULL,       -- front | back
    content_type TEXT NOT NULL,
    size_bytes   BIGINT NOT NULL,
    content      BLOB NOT NULL,
    created_at   BIGINT NOT NULL
);
CREATE INDEX kyc_documents_customer ON kyc_documents (customer_id);

-- Idempotency keys, per admin key, as SHA-256 hashes; never with the request body.
CREATE TABLE idempotency_keys (
    scope      TEXT NOT NULL,
    key_hash   TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (scope, key_hash)
);

-- What AML record-keeping requires of an erased customer, sealed under pii.key, destroyed
-- when retain_until passes.
CREATE TABLE aml_records (
    customer_id  TEXT PRIMARY KEY,
    evidence     BLOB NOT NULL,
    erased_at    BIGINT NOT NULL,
    retain_until BIGINT NOT NULL
);
CREATE INDEX aml_records_due ON aml_records (retain_until);
