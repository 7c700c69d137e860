#!/usr/bin/env bash
# Make sure the PostgreSQL the tests use is reachable: start the local cluster when it is installed but
# stopped. Under CI=true an unreachable server is an error; elsewhere the PostgreSQL tests will skip.
set -u
url="${HEADWATER_TEST_POSTGRES_URL:-}"
host=127.0.0.1
port=5432
if [ -n "$url" ]; then
  echo "ensure-postgres: using HEADWATER_TEST_POSTGRES_URL; not starting a local server"
  exit 0
fi
ready() { pg_isready -q -h "$host" -p "$port" 2>/dev/null; }
if ! command -v pg_isready >/dev/null 2>&1; then
  ready() { (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; }
fi
if ready; then
  echo "ensure-postgres: PostgreSQL is up at $host:$port"
  exit 0
fi
if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
  for version in $(ls /etc/postgresql); do
    echo "ensure-postgres: starting PostgreSQL $version"
    pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  done
  for _ in $(seq 1 30); do
    ready && { echo "ensure-postgres: PostgreSQL is up at $host:$port"; exit 0; }
    sleep 1
  done
fi
case "${CI:-}" in
  true|1|yes)
    echo "ensure-postgres: PostgreSQL is not reachable at $host:$port and could not be started; CI needs it" >&2
    exit 1 ;;
esac
echo "ensure-postgres: PostgreSQL is not reachable at $host:$port; its tests will be skipped (install it: apt-get install postgresql)" >&2
exit 0
