#!/usr/bin/env bash
# The main job of the README: brings up a 4-node lab rack (emulated bare-metal nodes with Redfish
# BMCs) in the background, then tours it. Arguments are passed to `converge rack tour`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh curl ca-certificates
exec node bin/converge.js rack tour "$@"
