#!/usr/bin/env bash
# Installs the Python-side tools the project needs into .venv (idempotent):
# moto (local DynamoDB, Streams), cfn-lint with AWS's serverless rules (cfn-lint-serverless)
# and aws-sam-cli (template checks), cargo-lambda (PyPI ships its binary), schemathesis (property-based API tests against
# docs/openapi.json; pinned so a fixed seed generates the same cases). Prints nothing
# when all are present.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
VENV=${VENV:-$ROOT/.venv}
STAMP="$VENV/.rt-relay-tools-v3"
[ -f "$STAMP" ] && exit 0
PY=${PYTHON:-python3}
echo "tools.sh: installing Python tools into $VENV" >&2
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
"$VENV/bin/pip" install -q --disable-pip-version-check \
  'moto[server]>=5,<6' 'cfn-lint>=1,<2' 'cfn-lint-serverless>=0.3,<0.4' 'aws-sam-cli>=1.120' \
  'cargo-lambda>=1.8' 'schemathesis==4.32.5' >&2
touch "$STAMP"
