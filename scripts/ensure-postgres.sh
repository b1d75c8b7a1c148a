#!/usr/bin/env bash
# Makes sure the PostgreSQL the store tests use is reachable (PATCHSWEEP_TEST_POSTGRES_URL,
# default postgres://postgres@127.0.0.1:5432/test): starts the local Debian cluster if it is
# installed and down; installs it with apt-get when absent and we are root (as on CI).
set -euo pipefail
url="${PATCHSWEEP_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}"
if [[ -n "${PATCHSWEEP_TEST_POSTGRES_URL:-}" ]]; then
  echo "using PostgreSQL at $url"
  exit 0
fi
ready() { command -v pg_isready >/dev/null && pg_isready -q -h 127.0.0.1 -p 5432; }
if ready; then
  echo "PostgreSQL is up on 127.0.0.1:5432"
else
  if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
    echo "installing PostgreSQL (apt-get) ..."
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  fi
  version="$(find /etc/postgresql -mindepth 1 -maxdepth 1 -printf '%f\n' | sort -V | tail -n 1)"
  echo "starting PostgreSQL $version ..."
  pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  for _ in $(seq 1 30); do ready && break; sleep 1; done
  ready || { echo "error: PostgreSQL did not come up on 127.0.0.1:5432" >&2; exit 1; }
fi
# The tests connect as postgres to database test without a password.
if ! psql -h 127.0.0.1 -U postgres -d test -c 'SELECT 1' >/dev/null 2>&1; then
  echo "preparing database test (trust auth on 127.0.0.1) ..."
  hba="$(su postgres -c "psql -tAc 'SHOW hba_file'")"
  if ! grep -q "patchsweep-tests" "$hba"; then
    sed -i '1i host all all 127.0.0.1/32 trust # patchsweep-tests' "$hba"
    su postgres -c "psql -qc 'SELECT pg_reload_conf()'" >/dev/null
  fi
  su postgres -c "psql -tAc \"SELECT 1 FROM pg_database WHERE datname='test'\"" | grep -q 1 || su postgres -c "createdb test"
fi
echo "PostgreSQL ready: $url"
