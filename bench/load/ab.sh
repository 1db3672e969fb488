#!/usr/bin/env bash
# Two PgProxy builds against one throwaway PostgreSQL, in alternating pgbench rounds: for a change to the relay, pool
# or runtime settings, measured in one run on the same machine (the shared machine's noise hits both alike).
# Prints TPS and pooler CPU per transaction (user + system from /proc) per round. Loopback only; every load is bounded
# by pgbench -T; both proxies are stopped at the end.
#   A=old/pgproxy.dll B=src/PgProxy/bin/Release/net10.0/pgproxy.dll bench/load/ab.sh
#   A=src/PgProxy/bin/Release/net10.0/pgproxy.dll B=artifacts/publish/pgproxy bench/load/ab.sh   # JIT against native
#   ARGS="-S -C -c 20 -j 2 -T 8" ROUNDS=3 A=... B=... bench/load/ab.sh     # connect + one transaction
#   A_PROXY="io_threads = 1" A=X B=X bench/load/ab.sh     # one build, two settings: lines added to A's [proxy] (B_PROXY)
#   A_ENV="DOTNET_GCgen0size=0x4000000" A=X B=X bench/load/ab.sh     # or two environments (B_ENV)
# Build the old one from a worktree: git worktree add /tmp/old REV && dotnet build /tmp/old/src/PgProxy -c Release
set -euo pipefail
cd "$(dirname "$0")/../.."
A=${A:?A=path to the first pgproxy.dll}
B=${B:-src/PgProxy/bin/Release/net10.0/pgproxy.dll}
ARGS=${ARGS:--S -c 50 -j 2 -T 10}
ROUNDS=${ROUNDS:-3}
POOL_MODE=${POOL_MODE:-transaction}
scripts/ensure-deps.sh
PG_BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
RUN=$(mktemp -d /tmp/pgproxy-ab.XXXXXX)
chmod 755 "$RUN"
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  as_pg "$PG_BIN/pg_ctl" -D "$RUN/data" -m fast -w stop >/dev/null 2>&1 || true
  rm -rf "$RUN"
}
trap cleanup EXIT INT TERM
[ "$(id -u)" -eq 0 ] && chown postgres: "$RUN"
as_pg "$PG_BIN/initdb" -D "$RUN/data" -U postgres --auth=trust --no-sync >/dev/null
as_pg "$PG_BIN/pg_ctl" -D "$RUN/data" -l "$RUN/pg.log" -w -o "-p 15540 -k $RUN -c listen_addresses=127.0.0.1 -c max_connections=200" start >/dev/null
as_pg "$PG_BIN/psql" -h "$RUN" -p 15540 -U postgres -qX -c "CREATE DATABASE bench" >/dev/null
"$PG_BIN/pgbench" -h 127.0.0.1 -p 15540 -U postgres -i -s 10 -q bench >/dev/null 2>&1
printf '"postgres" "x"\n' > "$RUN/users.txt"
# start NAME DLL PORT [ENV] [PROXY LINES]: a proxy with trust, pool 20, no ops port (the two must not share one; a
# build older than the ops port has no [http] section and is given none).
start() {
  local http=$'[http]\nlisten = ""'
  # A build is a .dll (run by dotnet) or a native executable (scripts/publish.sh), run directly.
  local -a px=("$2"); [[ $2 == *.dll ]] && px=(dotnet "$2")
  cat > "$RUN/$1.toml" <<T
[proxy]
listen = "127.0.0.1:$3"
pool_mode = "$POOL_MODE"
default_pool_size = 20
max_client_conn = 2000
${5:-}
[auth]
type = "trust"
file = "$RUN/users.txt"
[log]
level = "info"
$http
[databases.bench]
host = "127.0.0.1"
port = 15540
T
  if ! "${px[@]}" check --config "$RUN/$1.toml" >/dev/null 2>&1; then
    sed -i '/^\[http\]$/,/^listen = ""$/d' "$RUN/$1.toml"
    "${px[@]}" check --config "$RUN/$1.toml" >/dev/null || { echo "$2 refuses the config" >&2; exit 1; }
  fi
  # shellcheck disable=SC2086
  env ${4:-} "${px[@]}" run --config "$RUN/$1.toml" >/dev/null 2>"$RUN/$1.log" &
  PIDS+=($!)
}
start a "$A" 16601 "${A_ENV:-}" "${A_PROXY:-}"
start b "$B" 16602 "${B_ENV:-}" "${B_PROXY:-}"
for port in 16601 16602; do
  for _ in $(seq 1 100); do "$PG_BIN/psql" -h 127.0.0.1 -p "$port" -U postgres -qXAt -c "SELECT 1" bench >/dev/null 2>&1 && break; sleep 0.2; done
done
TICK=$(getconf CLK_TCK)
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# shellcheck disable=SC2086
for port in 16601 16602; do "$PG_BIN/pgbench" -h 127.0.0.1 -p "$port" -U postgres -n $ARGS bench >/dev/null 2>&1 || true; done # warm-up
echo "pgbench $ARGS, $POOL_MODE mode; a = ${A_ENV:+$A_ENV }$A${A_PROXY:+ ($A_PROXY)}, b = ${B_ENV:+$B_ENV }$B${B_PROXY:+ ($B_PROXY)}"
for r in $(seq 1 "$ROUNDS"); do
  for x in a b; do
    if [ "$x" = a ]; then pid=${PIDS[0]}; port=16601; else pid=${PIDS[1]}; port=16602; fi
    c0=$(cpu "$pid")
    # shellcheck disable=SC2086
    out=$("$PG_BIN/pgbench" -h 127.0.0.1 -p "$port" -U postgres -n $ARGS bench 2>&1)
    c1=$(cpu "$pid")
    tps=$(echo "$out" | sed -n 's/^tps = \([0-9.]*\).*/\1/p')
    tx=$(echo "$out" | sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p')
    echo "round $r $x tps=$tps cpu_us_per_tx=$(awk -v a="$c0" -v b="$c1" -v t="$TICK" -v n="$tx" 'BEGIN {printf "%.1f", (b - a) / t * 1e6 / n}')"
  done
done
