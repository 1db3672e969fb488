#!/usr/bin/env bash
# Compares PgProxy with PgBouncer and a direct connection, in one run, on loopback: pgbench scenarios in
# alternating order over several rounds; prints median TPS, min/max, ratios, and each pooler's CPU time per
# 1000 transactions (from /proc/PID/stat). Bounded: ROUNDS x scenarios x 3 targets x DURATION seconds.
#   bench/load/compare.sh                      # defaults: 3 rounds of 10 s
#   ROUNDS=5 DURATION=20 bench/load/compare.sh
#   POOL_MODE=session bench/load/compare.sh    # session mode (20 clients, as a session pool of 20 can serve no more)
# Transaction pool mode by default, pool of 20 in both poolers, SCRAM for clients.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
OUT=${OUT:-$ROOT/bench/results}
POOL_MODE=${POOL_MODE:-transaction}
scripts/ensure-deps.sh
if ! command -v pgbouncer >/dev/null && [ ! -x /usr/sbin/pgbouncer ]; then
  echo "Installing PgBouncer from Debian packages..."
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pgbouncer >/dev/null
fi
PGBOUNCER=$(command -v pgbouncer || echo /usr/sbin/pgbouncer)
PG_BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
RUN=$(mktemp -d /tmp/pgproxy-bench.XXXXXX)
chmod 755 "$RUN"
# Fixed ports below Linux's ephemeral range (32768-60999), so outgoing sockets never hold them.
PG_PORT=15432; BOUNCER_PORT=16432; PROXY_PORT=17432
ulimit -n 20000 2>/dev/null || true
PASSWORD=bench-secret
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
PIDS=()
BOUNCER_PID=""
cleanup() {
  # runuser does not pass the signal on to PgBouncer: stop PgBouncer itself.
  [ -n "$BOUNCER_PID" ] && kill "$BOUNCER_PID" 2>/dev/null || true
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  as_pg "$PG_BIN/pg_ctl" -D "$RUN/data" -m fast -w stop >/dev/null 2>&1 || true
  rm -rf "$RUN"
}
trap cleanup EXIT INT TERM

dotnet build src/PgProxy -c Release --nologo -v quiet >/dev/null
printf '%s\n' "$PASSWORD" > "$RUN/pw"
[ "$(id -u)" -eq 0 ] && chown -R postgres: "$RUN"
as_pg "$PG_BIN/initdb" -D "$RUN/data" -U postgres --auth-local=trust --auth-host=scram-sha-256 --pwfile="$RUN/pw" --no-sync >/dev/null
as_pg "$PG_BIN/pg_ctl" -D "$RUN/data" -l "$RUN/pg.log" -w -o "-p $PG_PORT -k $RUN -c listen_addresses=127.0.0.1 -c max_connections=300 -c shared_buffers=128MB" start >/dev/null
as_pg "$PG_BIN/psql" -h "$RUN" -p "$PG_PORT" -U postgres -qX -c "CREATE DATABASE bench" >/dev/null
PGPASSWORD=$PASSWORD "$PG_BIN/pgbench" -h 127.0.0.1 -p "$PG_PORT" -U postgres -i -s 10 -q bench >/dev/null 2>&1

printf '"postgres" "%s"\n' "$PASSWORD" > "$RUN/userlist.txt"
cat > "$RUN/pgbouncer.ini" <<INI
[databases]
bench = host=127.0.0.1 port=$PG_PORT dbname=bench
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $BOUNCER_PORT
unix_socket_dir =
auth_type = scram-sha-256
auth_file = $RUN/userlist.txt
pool_mode = $POOL_MODE
default_pool_size = 20
max_client_conn = 2000
logfile = $RUN/pgbouncer.log
INI
cat > "$RUN/proxy.toml" <<TOML
[proxy]
listen = "127.0.0.1:$PROXY_PORT"
pool_mode = "$POOL_MODE"
default_pool_size = 20
max_client_conn = 2000
[auth]
type = "scram-sha-256"
file = "userlist.txt"
[log]
level = "warning"
[databases.bench]
host = "127.0.0.1"
port = $PG_PORT
TOML
[ "$(id -u)" -eq 0 ] && chown -R postgres: "$RUN"
as_pg "$PGBOUNCER" -q "$RUN/pgbouncer.ini" & PIDS+=($!)
dotnet src/PgProxy/bin/Release/net10.0/pgproxy.dll run --config "$RUN/proxy.toml" & PIDS+=($!)
PROXY_PID=${PIDS[1]}
sleep 3
# PgBouncer in the foreground writes no pidfile: find it by its config path.
BOUNCER_PID=$(pgrep -n -f "pgbouncer -q $RUN/pgbouncer.ini" || true)
[ -n "$BOUNCER_PID" ] || { echo "PgBouncer did not start:"; cat "$RUN/pgbouncer.log"; exit 1; }
kill -0 "$PROXY_PID" 2>/dev/null || { echo "PgProxy did not start"; exit 1; }

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
TICK=$(getconf CLK_TCK)

# name|pgbench arguments. -M prepared runs one pgbench thread per client: pgbench prepares with a blocking call,
# which would otherwise stall a thread's other clients while they hold servers inside transactions.
if [ "$POOL_MODE" = session ]; then
  SCENARIOS=(
    "select-only, 20 clients|-S -c 20 -j 2"
    "select-only, connection per transaction (-C), 20 clients|-S -C -c 20 -j 2"
    "select-only, 1 client (latency)|-S -c 1 -j 1"
    "TPC-B-like, 20 clients|-c 20 -j 2"
  )
else
  SCENARIOS=(
    "select-only, 50 clients|-S -c 50 -j 2"
    "select-only extended protocol, 50 clients|-S -M extended -c 50 -j 2"
    "select-only prepared, 50 clients|-S -M prepared -c 50 -j 50"
    "select-only, connection per transaction (-C), 20 clients|-S -C -c 20 -j 2"
    "select-only, 1 client (latency)|-S -c 1 -j 1"
    "TPC-B-like, 50 clients|-c 50 -j 2"
  )
fi
declare -A TPS CPU LAT
for ((round = 1; round <= ROUNDS; round++)); do
  for s in "${SCENARIOS[@]}"; do
    name=${s%%|*}; args=${s#*|}
    # Alternate the order of targets each round.
    if (( round % 2 )); then targets="direct pgbouncer pgproxy"; else targets="pgproxy pgbouncer direct"; fi
    for t in $targets; do
      case $t in direct) port=$PG_PORT; pid="";; pgbouncer) port=$BOUNCER_PORT; pid=$BOUNCER_PID;; pgproxy) port=$PROXY_PORT; pid=$PROXY_PID;; esac
      before=0; [ -n "$pid" ] && before=$(cpu_ticks "$pid")
      # shellcheck disable=SC2086
      out=$(PGPASSWORD=$PASSWORD timeout $((DURATION + 60)) "$PG_BIN/pgbench" -h 127.0.0.1 -p "$port" -U postgres -n -T "$DURATION" $args bench 2>&1 || true)
      after=0; [ -n "$pid" ] && after=$(cpu_ticks "$pid")
      tps=$(echo "$out" | sed -n 's/^tps = \([0-9.]*\).*/\1/p' | head -1); tps=${tps:-0}
      lat=$(echo "$out" | sed -n 's/^latency average = \([0-9.]*\) ms/\1/p' | head -1); lat=${lat:-0}
      tx=$(echo "$out" | sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' | head -1); tx=${tx:-0}
      failed=$(echo "$out" | sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' | head -1)
      [ "${failed:-0}" != "0" ] && echo "WARN: $t / $name: $failed failed transactions" >&2
      # pgbench aborts a client on an error (e.g. PgBouncer 1.18 with -M prepared in transaction mode) and still
      # prints a TPS for the survivors: count such a run as failed, not as a result.
      if echo "$out" | grep -qE "aborted|Run was aborted"; then
        echo "WARN: $t / $name: clients aborted: $(echo "$out" | grep -m1 -E 'error|aborted')" >&2
        tps=0
      fi
      [ "$tps" = "0" ] && echo "WARN: $t / $name: no result: $(echo "$out" | tail -2)" >&2
      cpu="-"
      if [ -n "$pid" ] && [ "$tx" -gt 0 ]; then cpu=$(awk -v d=$((after - before)) -v t="$TICK" -v n="$tx" 'BEGIN {printf "%.3f", d / t / n * 1000}'); fi
      TPS["$name|$t"]+="$tps "; CPU["$name|$t"]+="$cpu "; LAT["$name|$t"]+="$lat "
      echo "round $round  $t  $name: tps=$tps latency=${lat}ms cpu_s_per_1000tx=$cpu" >&2
    done
  done
done

median() { tr ' ' '\n' | grep -v '^$' | grep -v '^-$' | sort -g | awk '{a[NR]=$1} END {if (NR==0) print "-"; else if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
minmax() { tr ' ' '\n' | grep -v '^$' | sort -g | awk 'NR==1{min=$1} {max=$1} END {printf "%s-%s", min, max}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (b > 0 && a != "-" && b != "-") printf "%.2f", a / b; else print "-"}'; }

mkdir -p "$OUT"
REPORT="$OUT/latest-$POOL_MODE.md"
{
  echo "# PgProxy vs PgBouncer vs direct ($(date -u +%Y-%m-%d), $POOL_MODE mode, pool 20, $ROUNDS rounds x ${DURATION}s)"
  echo
  echo "Command: \`ROUNDS=$ROUNDS DURATION=$DURATION POOL_MODE=$POOL_MODE bench/load/compare.sh\`. TPS are medians; \"-\" or 0 means the target failed the scenario (see warnings in the run's output)."
  echo
  echo "| scenario | direct TPS | PgBouncer TPS | PgProxy TPS (min-max) | PgProxy/PgBouncer | PgProxy/direct | latency ms direct / bouncer / proxy | pooler CPU s per 1000 tx: bouncer / proxy |"
  echo "| --- | --- | --- | --- | --- | --- | --- | --- |"
  for s in "${SCENARIOS[@]}"; do
    name=${s%%|*}
    d=$(echo "${TPS[$name|direct]}" | median); b=$(echo "${TPS[$name|pgbouncer]}" | median); p=$(echo "${TPS[$name|pgproxy]}" | median)
    echo "| $name | $d | $b | $p ($(echo "${TPS[$name|pgproxy]}" | minmax)) | $(ratio "$p" "$b") | $(ratio "$p" "$d") | $(echo "${LAT[$name|direct]}" | median) / $(echo "${LAT[$name|pgbouncer]}" | median) / $(echo "${LAT[$name|pgproxy]}" | median) | $(echo "${CPU[$name|pgbouncer]}" | median) / $(echo "${CPU[$name|pgproxy]}" | median) |"
  done
} > "$REPORT"
cat "$REPORT"
