#!/usr/bin/env bash
# The S3-compatible server test/warehouse exports to: moto's server (PyPI), installed into
# .cache/moto/ once, in a venv. Idempotent; .ci/run runs it, the S3 test runs it too.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="${CDP_CACHE_DIR:-$here/../../.cache}/moto"
mkdir -p "$root"
if [ ! -f "$root/venv/.complete" ]; then
  rm -rf "$root/venv"
  python3 -m venv "$root/venv"
  "$root/venv/bin/pip" install -q --disable-pip-version-check 'moto[server]==5.1.18'
  touch "$root/venv/.complete"
fi
