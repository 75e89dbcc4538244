-- The kind of write key that sent each event (`server` / `client`; '' for events stored
-- before kinds), kept with the history so `cdp rebuild` replays a client key's events with
-- the same limits the live processor applied (processor/apply-event.lua): a rebuild must
-- not merge what the live run refused. The intake view is changed in place (MODIFY QUERY,
-- atomic: no insert meets a missing view); it is 005's with the new column.
ALTER TABLE events ADD COLUMN IF NOT EXISTS key_kind LowCardinality(String) DEFAULT '';

ALTER TABLE events_intake ADD COLUMN IF NOT EXISTS keyKind Nullable(String);

ALTER TABLE events_intake_mv MODIFY QUERY
SELECT
  workspaceId AS workspace_id,
  messageId AS message_id,
  type,
  ifNull(event, if(type = 'track', '', type)) AS event,
  ifNull(name, '') AS name,
  ifNull(userId, '') AS user_id,
  ifNull(anonymousId, '') AS anonymous_id,
  ifNull(groupId, '') AS group_id,
  ifNull(previousId, '') AS previous_id,
  ts AS timestamp,
  rat AS received_at,
  sat AS sent_at,
  oat AS original_timestamp,
  properties,
  traits,
  context,
  integrations,
  ifNull(p.url, ifNull(c.page.url, '')) AS page_url,
  ifNull(p.path, ifNull(c.page.path, '')) AS page_path,
  ifNull(p.referrer, ifNull(c.page.referrer, '')) AS page_referrer,
  c.campaign.name AS campaign_name,
  c.campaign.source AS campaign_source,
  c.campaign.medium AS campaign_medium,
  c.campaign.term AS campaign_term,
  c.campaign.content AS campaign_content,
  p.revenue AS revenue,
  p.value AS value,
  c.ip AS ip,
  ifNull(keyKind, '') AS key_kind
FROM (
  SELECT
    *,
    parseDateTime64BestEffort(timestamp, 3, 'UTC') AS ts,
    parseDateTime64BestEffort(receivedAt, 3, 'UTC') AS rat,
    parseDateTime64BestEffortOrNull(sentAt, 3, 'UTC') AS sat,
    parseDateTime64BestEffortOrNull(originalTimestamp, 3, 'UTC') AS oat,
    -- one parse of each document for all the fields taken from it
    JSONExtract(
      properties,
      'Tuple(url Nullable(String), path Nullable(String), referrer Nullable(String), revenue Nullable(Float64), value Nullable(Float64))'
    ) AS p,
    JSONExtract(
      context,
      'Tuple(page Tuple(url Nullable(String), path Nullable(String), referrer Nullable(String)), campaign Tuple(name String, source String, medium String, term String, content String), ip String)'
    ) AS c
  FROM events_intake
)
WHERE throwIf(
    workspaceId = '' OR messageId = ''
      OR type NOT IN ('track', 'identify', 'page', 'screen', 'group', 'alias')
      OR (ifNull(userId, '') = '' AND ifNull(anonymousId, '') = '')
      OR NOT startsWith(properties, '{') OR NOT startsWith(traits, '{')
      OR NOT startsWith(context, '{') OR NOT startsWith(integrations, '{')
      OR toYear(ts) NOT BETWEEN 1900 AND 2299 OR toYear(rat) NOT BETWEEN 1900 AND 2299
      OR ifNull(toYear(sat), 2000) NOT BETWEEN 1900 AND 2299
      OR ifNull(toYear(oat), 2000) NOT BETWEEN 1900 AND 2299,
    'event not storable: check it event by event'
  ) = 0;
