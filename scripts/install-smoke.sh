#!/usr/bin/env bash
# Install the package as a user would (no dev extras) into a bare venv, then start a worker on
# each transport and run one task through it: the dev dependencies must not hide a missing
# runtime dependency (kombu imports `packaging` without declaring it, for one).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
WORK=$(mktemp -d /tmp/canvas-install-smoke.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

python3 -m venv "$WORK/venv"
"$WORK/venv/bin/pip" install -q "$ROOT"
"$WORK/venv/bin/canvas" --help >/dev/null

REDIS=${CANVAS_TEST_REDIS:-redis://127.0.0.1:6379/0}
AMQP=${CANVAS_TEST_AMQP:-amqp://guest:guest@127.0.0.1:5672//}
cd "$WORK"  # never the source tree: the installed package must be the one imported
for pair in "embedded|" "redis|$REDIS" "amqp|$AMQP"; do
  name=${pair%%|*} broker=${pair#*|}
  backend=$([ "$name" = embedded ] && echo "" || echo "$REDIS")
  echo "install smoke: a worker on the $name transport"
  SMOKE_BROKER=$broker SMOKE_BACKEND=$backend SMOKE_DIR="$WORK/$name" \
    "$WORK/venv/bin/python" "$ROOT/scripts/install_smoke.py"
done
echo "install smoke: passed"
