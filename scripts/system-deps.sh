#!/usr/bin/env bash
# Debian packages the project needs, installed when their program is missing:
#   graphviz   the `dot` binary that renders workflows (make demo, make test)
#   chromium   the headless browser the dashboard's browser tests drive (with `browser`: make test)
# Usage: scripts/system-deps.sh [browser]
set -euo pipefail

packages=()
command -v dot >/dev/null 2>&1 || packages+=(graphviz)
if [ "${1:-}" = "browser" ]; then
  command -v chromium >/dev/null 2>&1 || packages+=(chromium fonts-dejavu-core)
fi
[ ${#packages[@]} -eq 0 ] && exit 0

echo "Installing Debian packages: ${packages[*]}..."
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${packages[@]}" >/dev/null
command -v dot >/dev/null || { echo "graphviz did not install a 'dot' binary" >&2; exit 1; }
if [ "${1:-}" = "browser" ]; then
  command -v chromium >/dev/null || { echo "the chromium package did not install 'chromium'" >&2; exit 1; }
fi
