-- Every step of every journey run: entries (and refusals by the re-entry rule), waits and
-- what ended them, branches and splits taken (holdouts recorded as such), sends queued
-- (their outcome is in activation_ledger under the journey's send campaign id), trait
-- updates, conversions and exits. Written by the journey runner through cdp.journey-ledger.
CREATE TABLE IF NOT EXISTS journey_steps (
  workspace_id LowCardinality(String),
  at DateTime64(3, 'UTC'),
  journey_id String,
  version UInt32,
  profile_id String,
  run UInt32,
  node_id String,
  step LowCardinality(String),
  detail String,
  message_id String
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(at)
ORDER BY (workspace_id, journey_id, profile_id, run, at);
