#!/usr/bin/env bash
# The container image, built and run here with nothing pulled (scripts/build-image.sh on the debootstrap base that
# scripts/ensure-docker.sh makes): PgProxy in front of the test PostgreSQL image on a private network, with a
# read-only root filesystem. Checks the non-root user, the HEALTHCHECK (docker reports healthy), a psql query
# through it, and a SIGTERM drain (a query running when the stop comes finishes; the process exits 0 and logs the
# drain). Needs a Docker engine (scripts/ensure-docker.sh) and psql. Cleans up after itself.
set -euo pipefail
cd "$(dirname "$0")/.."
export DOCKER_API_VERSION="${DOCKER_API_VERSION:-1.41}"
id=$$
net="pgproxy-img-$id"; pg="pgproxy-img-pg-$id"; px="pgproxy-img-px-$id"
dir=$(mktemp -d /tmp/pgproxy-image-test.XXXXXX)
cleanup() { docker rm -f "$px" "$pg" >/dev/null 2>&1 || true; docker network rm "$net" >/dev/null 2>&1 || true; rm -rf "$dir"; }
trap cleanup EXIT
fail() { echo "image test: $*" >&2; docker logs "$px" 2>&1 | tail -n 20 >&2 || true; exit 1; }
psql_bin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)/psql"
[ -x "$psql_bin" ] || psql_bin=psql

image=$(scripts/build-image.sh pgproxy:test)
cat > "$dir/proxy.toml" <<'TOML'
[proxy]
listen = ["0.0.0.0:6432"]
pool_mode = "transaction"
shutdown_delay = "1s"
shutdown_timeout = "10s"
[auth]
type = "scram-sha-256"
file = "userlist.txt"
[http]
listen = "0.0.0.0:9127"
[databases.app]
host = "postgres"
port = 5432
TOML
printf '"app" "image-test"\n' > "$dir/userlist.txt"
chmod 755 "$dir"; chmod 644 "$dir"/*

docker network create "$net" >/dev/null
docker run -d --name "$pg" --network "$net" --network-alias postgres \
  -e POSTGRES_USER=app -e POSTGRES_PASSWORD=image-test -e POSTGRES_DB=app pgproxy-test-postgres:15 >/dev/null
docker run -d --name "$px" --network "$net" --read-only --tmpfs /tmp -v "$dir:/etc/pgproxy:ro" \
  -p 127.0.0.1::6432 "$image" >/dev/null

status=""
for _ in $(seq 1 60); do
  status=$(docker inspect -f '{{.State.Health.Status}}' "$px")
  [ "$status" = healthy ] && break
  sleep 1
done
[ "$status" = healthy ] || fail "HEALTHCHECK status is '$status', not healthy"
[ "$(docker exec "$px" id -u)" = 10001 ] || fail "the process does not run as UID 10001"
port=$(docker port "$px" 6432 | head -n 1 | sed 's/.*://')
url="host=127.0.0.1 port=$port user=app dbname=app connect_timeout=10"
answer=""
for _ in $(seq 1 30); do
  answer=$(PGPASSWORD=image-test "$psql_bin" "$url" -Atc "SELECT 40 + 2" 2>/dev/null || true)
  [ "$answer" = 42 ] && break
  sleep 1   # the database may still be starting
done
[ "$answer" = 42 ] || fail "psql through the image answered '$answer'"

# SIGTERM while a query runs: it finishes, then the process drains and exits 0.
PGPASSWORD=image-test "$psql_bin" "$url" -Atc "SELECT pg_sleep(2), 'finished'" > "$dir/running.out" 2>&1 &
client=$!
sleep 0.5
docker stop -t 30 "$px" >/dev/null
wait "$client" || true
grep -q finished "$dir/running.out" || fail "the query running at SIGTERM did not finish: $(cat "$dir/running.out")"
[ "$(docker inspect -f '{{.State.ExitCode}}' "$px")" = 0 ] || fail "exit code $(docker inspect -f '{{.State.ExitCode}}' "$px") after SIGTERM"
# Through a file: with pipefail, `docker logs | grep -q` fails when grep stops reading at its first match.
docker logs "$px" > "$dir/proxy.log" 2>&1
grep -q "Draining" "$dir/proxy.log" || fail "no drain in the log after SIGTERM"
echo "image test passed: $image healthy as UID 10001 on a read-only root filesystem; psql through it; SIGTERM drained"

# The compose stack (docker/docker-compose.yml) on the same local images: PgProxy waits for PostgreSQL's
# healthcheck, becomes healthy itself, and answers.
if ! command -v docker-compose >/dev/null; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  echo "Installing docker-compose from Debian packages..."
  $SUDO apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker-compose >/dev/null
fi
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
export COMPOSE_PROJECT_NAME="pgproxyimg$id" POSTGRES_IMAGE=pgproxy-test-postgres:15 PGPROXY_TARGET=prebuilt \
  PGPROXY_RUNTIME_IMAGE=pgproxy-debian:bookworm PGPROXY_PORT="$(free_port)" PGPROXY_OPS_PORT="$(free_port)"
compose() { docker-compose -f docker/docker-compose.yml "$@"; }
trap 'compose down -v >/dev/null 2>&1 || true; cleanup' EXIT
compose up -d --build >"$dir/compose.log" 2>&1 || { cat "$dir/compose.log" >&2; fail "docker-compose up failed"; }
cpx="${COMPOSE_PROJECT_NAME}_pgproxy_1"
status=""
for _ in $(seq 1 60); do
  status=$(docker inspect -f '{{.State.Health.Status}}' "$cpx" 2>/dev/null || true)
  [ "$status" = healthy ] && break
  sleep 1
done
[ "$status" = healthy ] || fail "compose: pgproxy is '$status', not healthy"
answer=$(PGPASSWORD=app "$psql_bin" "host=127.0.0.1 port=$PGPROXY_PORT user=app dbname=app connect_timeout=10" -Atc "SELECT 'compose'" 2>&1 || true)
[ "$answer" = compose ] || fail "compose: psql through pgproxy answered '$answer'"
echo "compose stack passed: postgres healthy, pgproxy healthy, psql through it"
