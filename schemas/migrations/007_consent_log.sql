-- Every consent decision (API, unsubscribe link; forms and imports later), kept so consent
-- is provable and survives the loss of Redis: `cdp rebuild` replays it onto the rebuilt
-- profiles, found again by `identifiers` (kind:value of the person when it was recorded).
CREATE TABLE IF NOT EXISTS consent_log (
  workspace_id LowCardinality(String),
  at DateTime64(3, 'UTC'),
  profile_id String,
  identifiers Array(String),
  channel LowCardinality(String),
  purpose LowCardinality(String),
  subscribed UInt8,
  source LowCardinality(String),
  actor String,
  campaign_id String,
  ip String,
  user_agent String,
  text String
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(at)
ORDER BY (workspace_id, profile_id, at);
