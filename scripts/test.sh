#!/usr/bin/env bash
# The test command of the README: installs what the tests need, then type-checks, lints and runs
# every unit and integration test (node's test runner; its closing lines give pass/fail counts).
# Debian's chromium runs the web UI's browser test (test/foundation/ui.test.ts); no browser is downloaded.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh python3-sushy python3-requests ca-certificates libnbd-bin nbdkit fio qemu-utils qemu-system-x86 etcd-server chromium
# (one command a line: under `set -e` a failure on the left of && does not stop the script)
echo "== typecheck"
npx tsc -p tsconfig.json --noEmit
npx tsc -p web/tsconfig.json --noEmit
echo "== lint"; npx eslint .
echo "== tests"; exec node scripts/run-tests.mjs src web test
