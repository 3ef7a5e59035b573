-- Expired idempotency keys are deleted by the worker (a key blocks reuse for 24 hours, then
-- is only a row nobody reads); this index finds them without scanning every key.
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);
