-- Identity stitching at query time: every identifier (user, anon, email) and every
-- merged-away profile id maps to the profile it resolves to now. Rows come from
-- cdp.identity; the highest version per identifier wins (argMax, or FINAL).
--   id_type: user | anon | email | profile
CREATE TABLE IF NOT EXISTS identity_links (
  workspace_id LowCardinality(String),
  id_type LowCardinality(String),
  id_value String,
  profile_id String,
  version UInt64,
  at DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (workspace_id, id_type, id_value);
