-- Stable views for data teams and BI tools (grant these, not the tables: see
-- infra/clickhouse/README.md). They hide the engine's details: events are deduplicated by
-- message_id (the table is a ReplacingMergeTree, so a replayed message can sit in two parts
-- until they merge) and carry the person they belong to after identity stitching.
-- Columns may be added to these views; none will be renamed or removed.

-- The profile every identifier resolves to now (the highest version wins).
CREATE VIEW IF NOT EXISTS bi_identities AS
SELECT workspace_id, id_type, id_value, argMax(profile_id, version) AS profile_id, max(at) AS linked_at
FROM identity_links
GROUP BY workspace_id, id_type, id_value;

-- One row per event, with person_id: the profile of its userId, else of its anonymousId,
-- else 'u:<userId>' / 'a:<anonymousId>' (the same rule as the analytics API).
CREATE VIEW IF NOT EXISTS bi_events AS
SELECT
  e.workspace_id AS workspace_id,
  e.message_id AS message_id,
  e.type AS type,
  e.event AS event,
  e.name AS name,
  e.timestamp AS timestamp,
  e.received_at AS received_at,
  e.user_id AS user_id,
  e.anonymous_id AS anonymous_id,
  multiIf(u.profile_id != '', u.profile_id, a.profile_id != '', a.profile_id,
          e.user_id != '', concat('u:', e.user_id), concat('a:', e.anonymous_id)) AS person_id,
  e.group_id AS group_id,
  e.properties AS properties,
  e.traits AS traits,
  e.context AS context,
  e.page_url AS page_url,
  e.page_path AS page_path,
  e.page_referrer AS page_referrer,
  e.campaign_name AS campaign_name,
  e.campaign_source AS campaign_source,
  e.campaign_medium AS campaign_medium,
  e.campaign_term AS campaign_term,
  e.campaign_content AS campaign_content,
  e.revenue AS revenue,
  e.value AS value
FROM (SELECT * FROM events LIMIT 1 BY workspace_id, message_id) AS e
LEFT JOIN (
  SELECT workspace_id, id_value, argMax(profile_id, version) AS profile_id
  FROM identity_links WHERE id_type = 'user' GROUP BY workspace_id, id_value
) AS u ON u.workspace_id = e.workspace_id AND u.id_value = e.user_id
LEFT JOIN (
  SELECT workspace_id, id_value, argMax(profile_id, version) AS profile_id
  FROM identity_links WHERE id_type = 'anon' GROUP BY workspace_id, id_value
) AS a ON a.workspace_id = e.workspace_id AND a.id_value = e.anonymous_id;

-- Marketing touches: events that carry campaign (UTM) fields.
CREATE VIEW IF NOT EXISTS bi_touchpoints AS
SELECT workspace_id, message_id, timestamp, person_id, event,
  campaign_name, campaign_source, campaign_medium, campaign_term, campaign_content,
  page_url, page_referrer
FROM bi_events
WHERE campaign_name != '' OR campaign_source != '' OR campaign_medium != ''
  OR campaign_term != '' OR campaign_content != '';

-- Events that carry a revenue or value (orders, subscriptions, ...).
CREATE VIEW IF NOT EXISTS bi_conversions AS
SELECT workspace_id, message_id, timestamp, person_id, event, revenue, value, properties
FROM bi_events
WHERE revenue IS NOT NULL OR value IS NOT NULL;

-- Every segment entry and exit, once.
CREATE VIEW IF NOT EXISTS bi_segment_membership AS
SELECT workspace_id, segment_id, segment_version, profile_id, type, epoch, at
FROM segment_membership_history
LIMIT 1 BY workspace_id, segment_id, profile_id, epoch;

-- Who is in each segment now (their latest transition is an entry: odd epoch).
CREATE VIEW IF NOT EXISTS bi_segment_members AS
SELECT workspace_id, segment_id, profile_id, max(epoch) AS latest_epoch,
  argMax(at, segment_membership_history.epoch) AS since
FROM segment_membership_history
GROUP BY workspace_id, segment_id, profile_id
HAVING latest_epoch % 2 = 1;
