-- Intake for identity changes, as events_intake (005) is for events: the sink hands
-- ClickHouse the cdp.identity messages as they are (JSONEachRow) and this view fans each
-- change out into identity_links rows, as processor/to-identity-rows.ts does in TS: one
-- `profile` row for the profile itself, one per identifier of a known kind (user | anon |
-- email, "kind:value", the value may hold ':'), one `profile` row per merged profile id.
-- A missing array takes a default that the check below refuses (an omitted field must not
-- read as an empty list); a mistyped one does not parse (numbers are not read as strings,
-- input_format_json_read_numbers_as_strings=0). A quoted version ("3") is read as the
-- number, where the TS check would refuse it: the only difference, and a harmless one.
--
-- A change the sink must not store makes the whole insert fail (throwIf, or a parse
-- error); the sink then checks that batch change by change in TS, dead-letters the bad
-- ones with the reason and inserts the rest as typed rows.
CREATE TABLE IF NOT EXISTS identity_intake (
  workspaceId String,
  profileId String,
  identifiers Array(String) DEFAULT ['\0omitted'],
  mergedProfileIds Array(String) DEFAULT ['\0omitted'],
  version Nullable(Int64),
  occurredAt String
)
ENGINE = Null;

CREATE MATERIALIZED VIEW IF NOT EXISTS identity_intake_mv TO identity_links AS
SELECT
  workspaceId AS workspace_id,
  link.1 AS id_type,
  link.2 AS id_value,
  profileId AS profile_id,
  toUInt64(assumeNotNull(version)) AS version,
  at
FROM (
  SELECT
    workspaceId,
    profileId,
    version,
    parseDateTime64BestEffort(occurredAt, 3, 'UTC') AS at,
    arrayConcat(
      [('profile', profileId)],
      arrayFilter(
        l -> l.1 IN ('user', 'anon', 'email') AND l.2 != '',
        arrayMap(i -> (substring(i, 1, position(i, ':') - 1), substring(i, position(i, ':') + 1)), identifiers)
      ),
      arrayMap(m -> ('profile', m), arrayFilter(m -> m != '' AND m != profileId, mergedProfileIds))
    ) AS links
  FROM identity_intake
  WHERE throwIf(
      workspaceId = '' OR profileId = '' OR ifNull(version, 0) < 1
        OR has(identifiers, '\0omitted') OR has(mergedProfileIds, '\0omitted')
        OR toYear(at) NOT BETWEEN 1900 AND 2299,
      'identity change not storable: check it change by change'
    ) = 0
)
ARRAY JOIN links AS link;
