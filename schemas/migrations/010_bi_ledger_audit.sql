-- Stable views over what the pipeline did, for data teams and BI tools (beside 003's views
-- over what people did). Same promise: columns may be added, none renamed or removed.

-- Every send decision once (a redelivered batch can write one twice), with the journey and
-- step of a journey's sends and the person the profile belongs to now (a merged-away
-- profile's sends count for the survivor).
CREATE VIEW IF NOT EXISTS bi_sends AS
SELECT
  l.workspace_id AS workspace_id,
  l.at AS at,
  l.send_key AS send_key,
  l.campaign_id AS campaign_id,
  l.campaign_version AS campaign_version,
  if(match(l.campaign_id, '^jrn_[^@]*@[0-9]+[.]'),
     substring(l.campaign_id, 1, position(l.campaign_id, '@') - 1), '') AS journey_id,
  if(journey_id != '', replaceRegexpOne(l.campaign_id, '^[^@]*@[0-9]+[.]', ''), '') AS journey_node,
  l.segment_id AS segment_id,
  l.segment_version AS segment_version,
  l.profile_id AS profile_id,
  if(p.pid != '', p.pid, l.profile_id) AS person_id,
  l.epoch AS epoch,
  l.channel AS channel,
  l.outcome AS outcome,
  l.reason AS reason,
  l.attempt AS attempt,
  l.status_code AS status_code,
  l.latency_ms AS latency_ms,
  l.provider_ms AS provider_ms,
  l.not_before AS not_before,
  l.provider_id AS provider_id
FROM (
  SELECT * FROM activation_ledger
  LIMIT 1 BY workspace_id, send_key, campaign_id, profile_id, channel, outcome, reason, attempt, status_code
) AS l
LEFT JOIN (
  SELECT workspace_id, id_value, argMax(profile_id, version) AS pid
  FROM identity_links WHERE id_type = 'profile' GROUP BY workspace_id, id_value
) AS p ON p.workspace_id = l.workspace_id AND p.id_value = l.profile_id;

-- Every step of every journey run once (entered, waited, branched and which way, sent,
-- converted, exited), with the person the profile belongs to now.
CREATE VIEW IF NOT EXISTS bi_journey_steps AS
SELECT
  s.workspace_id AS workspace_id,
  s.at AS at,
  s.journey_id AS journey_id,
  s.version AS version,
  s.profile_id AS profile_id,
  if(p.pid != '', p.pid, s.profile_id) AS person_id,
  s.run AS run,
  s.node_id AS node_id,
  s.step AS step,
  s.detail AS detail
FROM (
  SELECT * FROM journey_steps
  LIMIT 1 BY workspace_id, journey_id, version, profile_id, run, node_id, step, detail, message_id
) AS s
LEFT JOIN (
  SELECT workspace_id, id_value, argMax(profile_id, version) AS pid
  FROM identity_links WHERE id_type = 'profile' GROUP BY workspace_id, id_value
) AS p ON p.workspace_id = s.workspace_id AND p.id_value = s.profile_id;

-- Consent decisions for opt-in reporting: who, which channel and purpose, granted or
-- withdrawn, from where. The address, user agent, identifiers and text shown stay out (the
-- person's own export and the consent history API carry them).
CREATE VIEW IF NOT EXISTS bi_consent AS
SELECT workspace_id, at, profile_id, channel, purpose, subscribed, source, campaign_id
FROM consent_log;

-- Configuration changes: who (the admin key's fingerprint), what, when, before and after
-- (secrets were redacted when the row was written).
CREATE VIEW IF NOT EXISTS bi_audit AS
SELECT workspace_id, at, actor, action, entity_type, entity_id, before, after
FROM audit_log;
