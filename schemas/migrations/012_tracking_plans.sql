-- Tracking plans (schemas/tracking-plan.ts). Both tables are written by the history sink.
--
-- Events a plan in quarantine mode kept out of the pipeline (from cdp.quarantine): the
-- normalised event as ingest produced it, its violations and a one-line reason. A replay
-- (POST /v1/tracking-plan/replay) writes the same key again with status 'replayed' and a
-- higher version: read with FINAL (or argMax by version). A message quarantined twice (a
-- retried request, a Kafka redelivery) is one row.
CREATE TABLE IF NOT EXISTS quarantined_events (
  workspace_id LowCardinality(String),
  message_id String,
  at DateTime64(3, 'UTC'),
  type LowCardinality(String),
  event String,
  plan_version UInt32,
  reason String,
  violations String,
  event_json String,
  status LowCardinality(String),
  replayed_at Nullable(DateTime64(3, 'UTC')),
  version UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (workspace_id, message_id);

-- One row per violation of a checked event (allow, flag and quarantine modes alike), so
-- counts per event and property path are uniqExact(message_id): a redelivered message is
-- never counted twice, before or after merges. `at` is when ingest received the event.
CREATE TABLE IF NOT EXISTS tracking_plan_violations (
  workspace_id LowCardinality(String),
  at DateTime64(3, 'UTC'),
  event String,
  path String,
  keyword LowCardinality(String),
  mode LowCardinality(String),
  plan_version UInt32,
  message_id String
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(at)
ORDER BY (workspace_id, event, path, keyword, message_id);
