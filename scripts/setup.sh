#!/usr/bin/env bash
# Installs what Converge needs on a Debian/Ubuntu machine: checks Node.js, installs the Debian
# packages named in the arguments that are missing (apt-get as root; otherwise prints the exact
# command and stops), the npm dependencies, and Foundation's web UI (web/ → web/dist, when missing
# or stale; ADR 011). Run by demo.sh and test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

need_node_major=20
need_node_minor=19
if ! command -v node >/dev/null 2>&1; then
  echo "error: Node.js ${need_node_major}.${need_node_minor}+ is required and 'node' is not on PATH." >&2
  echo "       Install Node.js 20 LTS (https://nodejs.org or your distribution's nodejs 20 package), then run this again." >&2
  exit 1
fi
node_version=$(node -p 'process.versions.node')
node_major=${node_version%%.*}
node_rest=${node_version#*.}
node_minor=${node_rest%%.*}
if (( node_major < need_node_major || (node_major == need_node_major && node_minor < need_node_minor) )); then
  echo "error: Node.js ${need_node_major}.${need_node_minor}+ is required; this is ${node_version}." >&2
  exit 1
fi

missing=()
for pkg in "$@"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
if (( ${#missing[@]} > 0 )); then
  if [[ $(id -u) -eq 0 ]]; then
    echo "Installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "error: these Debian packages are missing: ${missing[*]}" >&2
    echo "       install them with:  sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
fi

if [[ ! -d node_modules || package-lock.json -nt node_modules/.package-lock.json ]]; then
  echo "Installing npm dependencies"
  npm ci --no-audit --no-fund --loglevel=error
fi

node scripts/build-web.mjs
