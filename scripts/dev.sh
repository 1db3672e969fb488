#!/usr/bin/env bash
# Brings up a throwaway local stack: a PostgreSQL on 127.0.0.1:54320 (data in .run/) and PgProxy on
# 127.0.0.1:6432 in front of it, then prints how to connect. Ctrl+C stops both and removes the data.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
scripts/ensure-deps.sh

PG_BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
RUN="$ROOT/.run"
PG_PORT=${PG_PORT:-54320}
PROXY_PORT=${PROXY_PORT:-6432}
HTTP_PORT=${HTTP_PORT:-9127}
APP_PASSWORD=${APP_PASSWORD:-app-$(head -c 6 /dev/urandom | od -An -tx1 | tr -d ' \n')}

as_pg() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

cleanup() {
  [ -n "${PROXY_PID:-}" ] && kill "$PROXY_PID" 2>/dev/null && wait "$PROXY_PID" 2>/dev/null || true
  as_pg "$PG_BIN/pg_ctl" -D "$RUN/data" -m fast -w stop >/dev/null 2>&1 || true
  rm -rf "$RUN"
}

rm -rf "$RUN"
mkdir -p "$RUN"
chmod 755 "$RUN"
trap cleanup EXIT INT TERM

echo "Building PgProxy..."
dotnet build src/PgProxy -c Release --nologo -v quiet >/dev/null

echo "Starting PostgreSQL on 127.0.0.1:$PG_PORT (data in .run/data)..."
printf '%s\n' "$APP_PASSWORD" > "$RUN/pw"
[ "$(id -u)" -eq 0 ] && chown -R postgres: "$RUN"
as_pg "$PG_BIN/initdb" -D "$RUN/data" -U postgres --auth-local=trust --auth-host=scram-sha-256 --pwfile="$RUN/pw" -E UTF8 --no-sync >/dev/null
as_pg "$PG_BIN/pg_ctl" -D "$RUN/data" -l "$RUN/postgres.log" -w \
  -o "-p $PG_PORT -k $RUN -c listen_addresses=127.0.0.1" start >/dev/null
as_pg "$PG_BIN/psql" -h "$RUN" -p "$PG_PORT" -U postgres -qX \
  -c "CREATE ROLE app LOGIN PASSWORD '$APP_PASSWORD'" -c "CREATE DATABASE app OWNER app" >/dev/null

cat > "$RUN/users.txt" <<USERS
"app" "$APP_PASSWORD"
USERS
cat > "$RUN/proxy.toml" <<TOML
[proxy]
listen = "127.0.0.1:$PROXY_PORT"
pool_mode = "session"
default_pool_size = 10
# Local: no load balancer to wait for on Ctrl+C.
shutdown_delay = "0"

[auth]
type = "scram-sha-256"
file = "users.txt"

[log]
level = "info"

[http]
listen = "127.0.0.1:$HTTP_PORT"

[databases.app]
host = "127.0.0.1"
port = $PG_PORT
TOML
[ "$(id -u)" -eq 0 ] && chown -R postgres: "$RUN"

dotnet src/PgProxy/bin/Release/net10.0/pgproxy.dll run --config "$RUN/proxy.toml" &
PROXY_PID=$!
for _ in $(seq 1 50); do
  if PGPASSWORD="$APP_PASSWORD" psql -h 127.0.0.1 -p "$PROXY_PORT" -U app -d app -XAtc "select 1" >/dev/null 2>&1; then break; fi
  sleep 0.2
done

cat <<MSG

PgProxy is up on 127.0.0.1:$PROXY_PORT in front of PostgreSQL on 127.0.0.1:$PG_PORT.
Connect with:

  psql "host=127.0.0.1 port=$PROXY_PORT user=app password=$APP_PASSWORD dbname=app"

Probes and metrics: http://127.0.0.1:$HTTP_PORT/healthz, /readyz and /metrics

Config: .run/proxy.toml (try: dotnet src/PgProxy/bin/Release/net10.0/pgproxy.dll check --config .run/proxy.toml)
Press Ctrl+C to stop both and remove .run/.
MSG
wait "$PROXY_PID"
