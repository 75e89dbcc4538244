-- A read-only ClickHouse user for BI tools (Metabase, Superset, Tableau, dbt sources):
-- it can read the stable bi_* views (schemas/migrations/003_bi_views.sql, 010_bi_ledger_audit.sql)
-- and nothing else.
-- Run as an admin on a ClickHouse server (chDB has no users), in the database the services
-- use (CLICKHOUSE_DATABASE, default `cdp`), after `cdp migrate`:
--   clickhouse-client --user cdp --password ... --database cdp --multiquery < infra/clickhouse/bi-readonly.sql
-- Replace the password first (or use IDENTIFIED WITH ssl_certificate / ldap).

CREATE SETTINGS PROFILE IF NOT EXISTS bi_readonly SETTINGS
  readonly = 1,                    -- SELECT only; settings cannot be changed by the client
  max_execution_time = 60,         -- seconds per query
  max_result_rows = 1000000,
  result_overflow_mode = 'throw',
  max_memory_usage = 4000000000;   -- bytes per query

CREATE USER IF NOT EXISTS bi_reader
  IDENTIFIED WITH sha256_password BY 'change-me'
  SETTINGS PROFILE 'bi_readonly';

-- The views run with their owner's rights (SQL SECURITY DEFINER, ClickHouse 24.2+), so the
-- reader needs no grant on the underlying tables (events, identity_links, ...).
ALTER TABLE cdp.bi_events MODIFY SQL SECURITY DEFINER DEFINER = CURRENT_USER;
ALTER TABLE cdp.bi_identities MODIFY SQL SECURITY DEFINER DEFINER = CURRENT_USER;
ALTER TABLE cdp.bi_touchpoints MODIFY SQL SECURITY DEFINER DEFINER = CURRENT_USER;
ALTER TABLE cdp.bi_conversions MODIFY SQL SECURITY DEFINER DEFINER = CURRENT_USER;
ALTER TABLE cdp.bi_segment_membership MODIFY SQL SECURITY DEFINER DEFINER = CURRENT_USER;
ALTER TABLE cdp.bi_segment_members MODIFY SQL SECURITY DEFINER DEFINER = CURRENT_USER;
ALTER TABLE cdp.bi_sends MODIFY SQL SECURITY DEFINER DEFINER = CURRENT_USER;
ALTER TABLE cdp.bi_journey_steps MODIFY SQL SECURITY DEFINER DEFINER = CURRENT_USER;
ALTER TABLE cdp.bi_consent MODIFY SQL SECURITY DEFINER DEFINER = CURRENT_USER;
ALTER TABLE cdp.bi_audit MODIFY SQL SECURITY DEFINER DEFINER = CURRENT_USER;

GRANT SELECT ON cdp.bi_events TO bi_reader;
GRANT SELECT ON cdp.bi_identities TO bi_reader;
GRANT SELECT ON cdp.bi_touchpoints TO bi_reader;
GRANT SELECT ON cdp.bi_conversions TO bi_reader;
GRANT SELECT ON cdp.bi_segment_membership TO bi_reader;
GRANT SELECT ON cdp.bi_segment_members TO bi_reader;
GRANT SELECT ON cdp.bi_sends TO bi_reader;
GRANT SELECT ON cdp.bi_journey_steps TO bi_reader;
GRANT SELECT ON cdp.bi_consent TO bi_reader;
GRANT SELECT ON cdp.bi_audit TO bi_reader;

-- One workspace per BI user (multi-tenant deployments): a row policy on the views.
--   CREATE ROW POLICY IF NOT EXISTS ws_acme ON cdp.bi_events USING workspace_id = 'acme' TO bi_reader_acme;
