#!/usr/bin/env bash
# The test command of README.md (and of CI): fetches the demo model if absent, then runs
# every test of the workspace, the real-model, PostgreSQL and headless-Chromium ones included.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/fetch-demo-model.sh
scripts/ensure-postgres.sh
scripts/ensure-chromium.sh
cargo test --workspace "$@"
