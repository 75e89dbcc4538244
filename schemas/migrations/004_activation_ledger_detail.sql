-- Activation ledger detail: time spent at the provider (latency_ms is now from the change
-- reaching activation to the decision), when a delayed or retried send may run, and the
-- provider's message id.
ALTER TABLE activation_ledger ADD COLUMN IF NOT EXISTS provider_ms UInt32 DEFAULT 0;
ALTER TABLE activation_ledger ADD COLUMN IF NOT EXISTS not_before Nullable(DateTime64(3, 'UTC'));
ALTER TABLE activation_ledger ADD COLUMN IF NOT EXISTS provider_id String DEFAULT '';
