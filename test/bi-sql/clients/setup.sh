#!/usr/bin/env bash
# The third-party clients test/bi-sql drives against the BI SQL endpoint, installed into
# .cache/bi-clients/ once: Python clickhouse-connect (PyPI, in a venv) and the ClickHouse
# JDBC driver (Maven Central). Idempotent; .ci/run runs it, the test runs it too.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="${CDP_CACHE_DIR:-$here/../../../.cache}/bi-clients"
mkdir -p "$root"
if [ ! -f "$root/venv/.complete" ]; then
  rm -rf "$root/venv"
  python3 -m venv "$root/venv"
  "$root/venv/bin/pip" install -q --disable-pip-version-check 'clickhouse-connect==1.12.0'
  touch "$root/venv/.complete"
fi
if [ ! -f "$root/jdbc/.complete" ]; then
  mvn -q -B -f "$here/pom.xml" dependency:copy-dependencies -DoutputDirectory="$root/jdbc" -DincludeScope=runtime
  touch "$root/jdbc/.complete"
fi
