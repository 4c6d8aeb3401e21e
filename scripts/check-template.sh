#!/usr/bin/env bash
# Checks template.yaml offline: cfn-lint, alone and with AWS's serverless rules (errors and
# warnings fail; informational notes do not), then `sam validate --lint` (the SAM transform
# plus its own cfn-lint pass).
# Needs the tools from scripts/tools.sh (set VENV to use another virtualenv).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
VENV=${VENV:-$ROOT/.venv}
TEMPLATE=${TEMPLATE:-$ROOT/template.yaml}

for tool in cfn-lint sam; do
  if [ ! -x "$VENV/bin/$tool" ]; then
    echo "check-template: $VENV/bin/$tool is missing; run scripts/tools.sh" >&2
    exit 2
  fi
done

# Exit status is a bit mask (2 errors, 4 warnings, 8 informational); only the last is fine.
# Twice: cfn-lint's own rules, then with AWS's serverless rules (cfn-lint-serverless) added.
for rules in "" cfn_lint_serverless.rules; do
  echo "check-template: cfn-lint ${rules:+--append-rules $rules }$TEMPLATE" >&2
  set +e
  "$VENV/bin/cfn-lint" ${rules:+--append-rules "$rules"} -- "$TEMPLATE"
  status=$?
  set -e
  if [ $((status & ~8)) -ne 0 ]; then
    echo "check-template: cfn-lint ${rules:+with $rules }failed (exit $status)" >&2
    exit 1
  fi
done

echo "check-template: sam validate --lint" >&2
# No credentials or network needed; the region only feeds ARNs the transform builds.
(
  cd "$ROOT"
  SAM_CLI_TELEMETRY=0 "$VENV/bin/sam" validate --lint --region "${AWS_REGION:-us-east-1}" \
    --template-file "$TEMPLATE"
) || {
  echo "check-template: sam validate failed" >&2
  exit 1
}
echo "check-template: ok" >&2
