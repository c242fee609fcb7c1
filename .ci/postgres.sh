#!/usr/bin/env bash
# Installs (if needed) and starts Debian's PostgreSQL on loopback for the multi-worker storage
# tests, creates a throwaway role and database, and prints the URL to export as
# SPECDEC_TEST_POSTGRES_URL. Used by .ci/run; safe to run twice.
set -euo pipefail
if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
fi
ver=$(ls /usr/lib/postgresql | sort -n | tail -1)
if ! pg_lsclusters -h | awk -v v="$ver" '$1==v && $2=="main"' | grep -q .; then
  pg_createcluster "$ver" main >/dev/null
fi
pg_ctlcluster "$ver" main start >/dev/null 2>&1 || true
for _ in $(seq 30); do
  pg_isready -h 127.0.0.1 -q && break
  sleep 1
done
pg_isready -h 127.0.0.1 -q
su postgres -c "psql -q -v ON_ERROR_STOP=1" >/dev/null <<'SQL'
DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'specdec') THEN
    CREATE ROLE specdec LOGIN PASSWORD 'specdec-ci';
  END IF;
END $$;
SQL
su postgres -c "psql -tAc \"SELECT 1 FROM pg_database WHERE datname='specdec_test'\"" | grep -q 1 \
  || su postgres -c "createdb -O specdec specdec_test"
echo "postgresql+psycopg://specdec:specdec-ci@127.0.0.1:5432/specdec_test"
