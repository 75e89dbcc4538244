-- Double opt-in: a consent decision's status (`subscribed`, `revoked`, or `pending`: a grant
-- waiting for the person to confirm it by a link) and the confirmation record (`ref`) that a
-- pending grant and its confirmation share. Rows written before have an empty status (read
-- from `subscribed`).
ALTER TABLE consent_log ADD COLUMN IF NOT EXISTS status LowCardinality(String) DEFAULT '';
ALTER TABLE consent_log ADD COLUMN IF NOT EXISTS ref String DEFAULT ''
