-- DOCUMENTATION ONLY (not applied by `cdp migrate`): the history tables on a ClickHouse
-- cluster, sharded and replicated. Each table becomes a Replicated* local table on every
-- node plus a Distributed table with the name the services use, so the SQL in
-- schemas/migrations and the query service runs unchanged.
--   cluster: `cdp` (remote_servers in config.xml); macros {shard} and {replica} per node;
--   ClickHouse Keeper (or ZooKeeper) for replication.
-- Sharding key: the workspace and person-ish identity, so one person's events sit on one
-- shard (funnels and attribution group by person: with `distributed_group_by_no_merge`
-- or `optimize_distributed_group_by_sharding_key` each shard answers for its own persons).
-- A merged person whose identifiers hash to different shards is stitched across shards by
-- the Distributed query (correct, but the GROUP BY person then merges on the initiator).

CREATE TABLE IF NOT EXISTS events_local ON CLUSTER cdp
AS events  -- same columns as 001_init.sql
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/cdp/events', '{replica}', inserted_at)
PARTITION BY toYYYYMM(timestamp)
ORDER BY (workspace_id, toDate(timestamp), event, message_id, timestamp);

-- Replays land on the same shard as the original (the key depends only on the message),
-- so ReplacingMergeTree collapses them and LIMIT 1 BY message_id stays exact per shard.
CREATE TABLE IF NOT EXISTS events_dist ON CLUSTER cdp AS events_local
ENGINE = Distributed(cdp, currentDatabase(), events_local,
  cityHash64(workspace_id, if(user_id != '', user_id, anonymous_id)));

CREATE TABLE IF NOT EXISTS identity_links_local ON CLUSTER cdp
AS identity_links
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/cdp/identity_links', '{replica}', version)
ORDER BY (workspace_id, id_type, id_value);

-- identity_links is small (one row per identifier): replicate it fully to every node
-- instead of sharding it, so the stitching join stays local on each shard:
--   use one shard with every node as a replica for this table, or a Distributed table
--   over it with `distributed_product_mode = 'global'` (GLOBAL JOIN).
CREATE TABLE IF NOT EXISTS identity_links_dist ON CLUSTER cdp AS identity_links_local
ENGINE = Distributed(cdp, currentDatabase(), identity_links_local, cityHash64(workspace_id, id_value));

-- Then point the services at the Distributed tables under the names they use, e.g. in a
-- database of their own:  CREATE TABLE cdp.events AS cdp_cluster.events_dist ...
-- The sink's insert batching (CDP_HISTORY_*) matters even more here: a Distributed insert
-- splits into one part per shard; keep inserts at about one per second per table.
-- The intake tables (events_intake 005, identity_intake 006) are Null tables with a
-- materialized view; create them as the migrations do in the database the services use,
-- so each view writes into the Distributed `events` / `identity_links` there. They store
-- nothing and need no replication.
