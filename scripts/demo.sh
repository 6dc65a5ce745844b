#!/usr/bin/env bash
# The main job of the README: deploys a lab cluster end to end on this machine (converge demo): a
# rack of emulated bare-metal nodes with Redfish BMCs, Foundation, imaging, cluster creation and
# validation, then a guest image built from Debian packages, imported, and a VM booted from it. Arguments are passed to `converge demo` (e.g. --nodes 4, --exit); Ctrl-C stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh curl ca-certificates etcd-server qemu-utils qemu-system-x86
exec node bin/converge.js demo "$@"
