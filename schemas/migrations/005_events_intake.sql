-- Intake for the history sink: the sink hands ClickHouse the normalised event envelopes
-- exactly as they are on cdp.events (JSONEachRow, nested objects read as their JSON text
-- with input_format_json_read_objects_as_strings=1), and this view derives the typed
-- columns of `events` in the engine. JS never parses or re-serialises an event on this
-- path (that was two thirds of the sink's time).
--
-- A row the sink must not store makes the whole insert fail (throwIf below, or a JSON
-- parse error); the sink then checks that batch event by event, sends the bad ones to the
-- dead-letter topic with the reason and inserts the rest. The checks mirror the sink's
-- own (processor/to-history-row.ts).
CREATE TABLE IF NOT EXISTS events_intake (
  workspaceId String,
  messageId String,
  type String,
  event Nullable(String),
  name Nullable(String),
  userId Nullable(String),
  anonymousId Nullable(String),
  groupId Nullable(String),
  previousId Nullable(String),
  timestamp String,
  receivedAt String,
  sentAt Nullable(String),
  originalTimestamp Nullable(String),
  properties String,
  traits String,
  context String,
  integrations String
)
ENGINE = Null;

CREATE MATERIALIZED VIEW IF NOT EXISTS events_intake_mv TO events AS
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
  c.ip AS ip
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
