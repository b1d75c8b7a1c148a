#!/usr/bin/env bash
# Makes sure headless Chromium and chromedriver are installed for the report test
# (tests/pictures.rs): installs the Debian packages chromium and chromium-driver with apt-get
# when absent and we are root (as on CI); otherwise says how to install them.
set -euo pipefail
if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
  echo "chromium and chromedriver found"
  exit 0
fi
if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null; then
  echo "installing chromium and chromium-driver (apt-get) ..."
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
else
  echo "warning: chromium/chromedriver missing; the report test will fail until you run" >&2
  echo "  sudo apt-get install chromium chromium-driver" >&2
fi
