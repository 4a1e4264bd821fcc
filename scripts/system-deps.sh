#!/usr/bin/env bash
# Debian packages the project needs: graphviz for the `dot` binary that renders workflows.
set -euo pipefail
if command -v dot >/dev/null 2>&1; then
  exit 0
fi
echo "Installing Debian's graphviz (for the 'dot' binary)..."
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq graphviz >/dev/null
command -v dot >/dev/null || { echo "graphviz did not install a 'dot' binary" >&2; exit 1; }
