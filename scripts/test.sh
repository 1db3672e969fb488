#!/usr/bin/env bash
# Runs the whole test suite: unit tests (codec, TOML, pool, relay) and integration tests against a real
# PostgreSQL that the test fixture starts in a temp dir (or the server in PROXY_TEST_PG=host:port), then a few
# integration classes again against PostgreSQL in a Docker container started by Testcontainers, the executable the
# image ships (Native AOT) run end to end, and the container image built and run (scripts/test-image.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-deps.sh
# promtool (Debian's prometheus package) checks the /metrics exposition in OpsEndpointsTests.
if ! command -v promtool >/dev/null; then
  echo "Installing promtool from Debian packages (prometheus)..."
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
  # The package may start its own server: the tests need only the tool.
  if pgrep -x prometheus >/dev/null; then $SUDO pkill -x prometheus || true; fi
fi
# PgBouncer's own example config (Debian's pgbouncer package ships /etc/pgbouncer/pgbouncer.ini): ConvertTests
# converts it with every key uncommented.
if [ ! -f /etc/pgbouncer/pgbouncer.ini ]; then
  echo "Installing pgbouncer from Debian packages (for its example config)..."
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends pgbouncer >/dev/null
  if pgrep -x pgbouncer >/dev/null; then $SUDO pkill -x pgbouncer || true; fi
fi
if [ ! -d ../shared/toml-test ]; then
  echo "note: ../shared/toml-test is not beside the checkout: its TOML vectors are reported as skipped, by name" >&2
fi
# The Testcontainers pass (below) needs a Docker engine and the locally built PostgreSQL image; a missing engine
# fails the run. PGPROXY_TEST_CONTAINERS=skip leaves that pass out, by request only.
dockerd_pid=/tmp/pgproxy-dockerd.$$.pid
if [ "${PGPROXY_TEST_CONTAINERS:-run}" != skip ]; then
  trap 'if [ -s "$dockerd_pid" ]; then kill "$(cat "$dockerd_pid")" 2>/dev/null || true; rm -f "$dockerd_pid"; fi' EXIT
  PGPROXY_DOCKERD_PIDFILE="$dockerd_pid" scripts/ensure-docker.sh
fi
dotnet build Proxy.sln -c Release --nologo -v quiet
log=$(mktemp)
results=$(mktemp -d /tmp/pgproxy-test-results.XXXXXX)
status=0
dotnet test Proxy.sln -c Release --no-build --nologo --logger "console;verbosity=minimal" --logger trx --results-directory "$results" 2>&1 | tee "$log" || status=$?
# The native pass: the executable the image ships (Native AOT, scripts/publish.sh) run end to end by
# ShippedBinaryTests (every subcommand, SCRAM and TLS logins, /metrics, JSON logs, reload and drain by signal).
echo "Native pass: scripts/publish.sh, then ShippedBinaryTests against artifacts/publish/pgproxy"
if scripts/publish.sh artifacts/publish >/dev/null; then
  PGPROXY_EXECUTABLE="$PWD/artifacts/publish/pgproxy" dotnet test tests/PgProxy.IntegrationTests -c Release --no-build --nologo \
    --logger "console;verbosity=minimal" --logger "trx;LogFileName=native.trx" --results-directory "$results" \
    --filter "FullyQualifiedName~.ShippedBinaryTests." 2>&1 | tee -a "$log" || status=$?
else
  echo "native pass: scripts/publish.sh failed" | tee -a "$log" >&2
  status=1
fi
if [ "${PGPROXY_TEST_CONTAINERS:-run}" != skip ]; then
  # The same integration classes against PostgreSQL in a container, started by Testcontainers: no Ryuk (it cannot be
  # pulled; the fixture removes its container), and every connection to the port published on loopback.
  container_classes=(TransactionModeTests PreparedStatementTests FixtureSourceTests)
  filter=$(printf 'FullyQualifiedName~.%s.|' "${container_classes[@]}")
  echo "Testcontainers pass: ${container_classes[*]} against a container"
  DOCKER_API_VERSION="${DOCKER_API_VERSION:-1.41}" TESTCONTAINERS_RYUK_DISABLED=true TESTCONTAINERS_HOST_OVERRIDE=127.0.0.1 \
    PROXY_TEST_POSTGRES=container dotnet test tests/PgProxy.IntegrationTests -c Release --no-build --nologo \
    --logger "console;verbosity=minimal" --logger "trx;LogFileName=containers.trx" --results-directory "$results" \
    --filter "${filter%|}" \
    2>&1 | tee -a "$log" || status=$?
  # The container image: built here (no registry), run read-only, healthy, queried, drained by SIGTERM.
  echo "Image test: scripts/test-image.sh"
  PGPROXY_PUBLISHED=1 scripts/test-image.sh || status=1
else
  echo "Testcontainers pass and image test skipped (PGPROXY_TEST_CONTAINERS=skip)"
fi
# One plain summary line over all test assemblies.
passed=$(grep -oE 'Passed: +[0-9]+' "$log" | awk '{s+=$2} END {print s+0}')
failed=$(grep -oE 'Failed: +[0-9]+' "$log" | awk '{s+=$2} END {print s+0}')
skipped=$(grep -oE 'Skipped: +[0-9]+' "$log" | awk '{s+=$2} END {print s+0}')
rm -f "$log"
echo "$passed passed, $failed failed, $skipped skipped"
if [ "$skipped" -gt 0 ]; then
  # Skipped tests by name (the TOML vectors when ../shared/toml-test is not beside the checkout).
  cat "$results"/*.trx 2>/dev/null | grep -oE 'testName="[^"]+"[^>]*outcome="NotExecuted"' | sed -E 's/^testName="([^"]+)".*/\1/' > "$results/skipped.txt" || true
  echo "skipped, by name: $results/skipped.txt ($(wc -l < "$results/skipped.txt") names), for example:"
  head -n 3 "$results/skipped.txt" | sed 's/^/  /'
fi
if [ "$passed" -eq 0 ]; then echo "no test ran" >&2; exit 1; fi
exit "$status"
