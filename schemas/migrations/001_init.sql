-- Interaction history: one row per accepted event, all envelope fields kept, plus typed
-- columns for what analytics filter on. Replays of the same Kafka message produce the
-- same sorting key and collapse on merge; queries that must be exact dedupe by message_id.
CREATE TABLE IF NOT EXISTS events (
  workspace_id LowCardinality(String),
  message_id String,
  type LowCardinality(String),
  event String,
  name String,
  user_id String,
  anonymous_id String,
  group_id String,
  previous_id String,
  timestamp DateTime64(3, 'UTC'),
  received_at DateTime64(3, 'UTC'),
  sent_at Nullable(DateTime64(3, 'UTC')),
  original_timestamp Nullable(DateTime64(3, 'UTC')),
  properties String,
  traits String,
  context String,
  integrations String,
  page_url String,
  page_path String,
  page_referrer String,
  campaign_name String,
  campaign_source String,
  campaign_medium String,
  campaign_term String,
  campaign_content String,
  revenue Nullable(Float64),
  value Nullable(Float64),
  ip String,
  inserted_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(inserted_at)
PARTITION BY toYYYYMM(timestamp)
ORDER BY (workspace_id, toDate(timestamp), event, message_id, timestamp);

-- Every configuration change (segments, campaigns, keys) and every erasure.
CREATE TABLE IF NOT EXISTS audit_log (
  workspace_id LowCardinality(String),
  at DateTime64(3, 'UTC'),
  actor String,
  action LowCardinality(String),
  entity_type LowCardinality(String),
  entity_id String,
  before String,
  after String
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(at)
ORDER BY (workspace_id, entity_type, entity_id, at);

-- Every activation decision: sent, suppressed (and why), failed, retried.
CREATE TABLE IF NOT EXISTS activation_ledger (
  workspace_id LowCardinality(String),
  at DateTime64(3, 'UTC'),
  send_key String,
  campaign_id String,
  campaign_version UInt32,
  segment_id String,
  segment_version UInt32,
  profile_id String,
  epoch UInt32,
  channel LowCardinality(String),
  outcome LowCardinality(String),
  reason String,
  attempt UInt16,
  status_code UInt16,
  latency_ms UInt32
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(at)
ORDER BY (workspace_id, campaign_id, at, send_key);

-- Segment membership transitions, as emitted on cdp.segment-changes.
CREATE TABLE IF NOT EXISTS segment_membership_history (
  workspace_id LowCardinality(String),
  segment_id String,
  segment_version UInt32,
  profile_id String,
  type LowCardinality(String),
  epoch UInt32,
  message_id String,
  at DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(at)
ORDER BY (workspace_id, segment_id, profile_id, epoch);
