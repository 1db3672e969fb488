#!/usr/bin/env bash
# Runs the whole test suite: unit tests (codec, TOML, pool, relay) and integration tests against a real
# PostgreSQL that the test fixture starts in a temp dir (or the server in PROXY_TEST_PG=host:port).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-deps.sh
if [ ! -d ../shared/toml-test ]; then
  echo "note: ../shared/toml-test is not beside the checkout: its TOML vectors are reported as skipped, by name" >&2
fi
dotnet build Proxy.sln -c Release --nologo -v quiet
log=$(mktemp)
results=$(mktemp -d /tmp/pgproxy-test-results.XXXXXX)
status=0
dotnet test Proxy.sln -c Release --no-build --nologo --logger "console;verbosity=minimal" --logger trx --results-directory "$results" 2>&1 | tee "$log" || status=$?
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
