#!/usr/bin/env bash
# Compares PgProxy with PgBouncer and a direct connection, in one run, on loopback: pgbench scenarios in
# alternating order over several rounds; prints median TPS, min/max, ratios, each pooler's CPU time and system
# calls per transaction (/proc/PID/stat, perf stat), the latency one client adds, the machine's steal time, and the
# resident memory per idle client (IDLE_CLIENTS connections logged in and idle). Writes
# bench/results/latest-<mode>.md and .png (gnuplot).
# Bounded: ROUNDS x scenarios x 3 targets x DURATION seconds, plus the idle-client step (capped at 10 minutes).
#   bench/load/compare.sh                      # defaults: 3 rounds of 10 s, 5000 idle clients
#   ROUNDS=5 DURATION=20 bench/load/compare.sh
#   UPDATE_README=1 bench/load/compare.sh      # also puts the table into README.md (transaction mode)
#   POOL_MODE=session bench/load/compare.sh    # session mode (20 clients, as a session pool of 20 can serve no more)
#   ONLY="(-C)" ROUNDS=3 bench/load/compare.sh  # only the scenarios whose name contains the text (not for publishing)
#   PROXY_BIN=native bench/load/compare.sh     # PgProxy as the image ships it (scripts/publish.sh), not the JIT build
#   PROXY_BIN=artifacts/publish/pgproxy bench/load/compare.sh   # a native executable already published
# Transaction pool mode by default, pool of 20 in both poolers. Each pooler runs twice, once with trust and once
# with SCRAM-SHA-256 for clients (scenarios name theirs); the server logins are SCRAM either way. Both poolers log
# as they do by default: connections and disconnections (PgBouncer's log_connections, PgProxy's info level).
# TLS scenarios: TLS on both legs. PostgreSQL and a third pair of poolers offer TLS to clients with one self-signed
# certificate (made here with openssl), pgbench asks for it (sslmode=require), and both poolers talk TLS to PostgreSQL
# (server_tls_sslmode = require, no certificate check in either). Every other scenario runs plaintext on both legs
# (sslmode=disable, server_tls_sslmode = disable in both poolers), so like is compared with like.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
OUT=${OUT:-$ROOT/bench/results}
POOL_MODE=${POOL_MODE:-transaction}
IDLE_CLIENTS=${IDLE_CLIENTS:-5000}
UPDATE_README=${UPDATE_README:-0}
PROXY_BIN=${PROXY_BIN:-}
PROXY_SPEC=$PROXY_BIN   # as given (the report's command line), before "native" becomes a path
scripts/ensure-deps.sh
if ! command -v gnuplot >/dev/null; then
  echo "Installing gnuplot from Debian packages (for the chart)..."
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gnuplot-nox >/dev/null || echo "WARN: no gnuplot: no chart"
fi
if ! command -v pgbouncer >/dev/null && [ ! -x /usr/sbin/pgbouncer ]; then
  echo "Installing PgBouncer from Debian packages..."
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pgbouncer >/dev/null
fi
PGBOUNCER=$(command -v pgbouncer || echo /usr/sbin/pgbouncer)
PG_BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
RUN=$(mktemp -d /tmp/pgproxy-bench.XXXXXX)
chmod 755 "$RUN"
# Fixed ports below Linux's ephemeral range (32768-60999), so outgoing sockets never hold them.
PG_PORT=15432; BOUNCER_PORT=16432; PROXY_PORT=17432; BOUNCER_SCRAM_PORT=16433; PROXY_SCRAM_PORT=17433
BOUNCER_TLS_PORT=16434; PROXY_TLS_PORT=17434
ulimit -n 20000 2>/dev/null || true
PASSWORD=bench-secret
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
PIDS=()
BOUNCER_PIDS=""
cleanup() {
  # runuser does not pass the signal on to PgBouncer: stop PgBouncer itself, also those started before a failure
  # stopped the run (not yet in BOUNCER_PIDS), found by their config path.
  for p in $BOUNCER_PIDS; do kill "$p" 2>/dev/null || true; done
  pkill -f "pgbouncer -q $RUN/" 2>/dev/null || true
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  as_pg "$PG_BIN/pg_ctl" -D "$RUN/data" -m fast -w stop >/dev/null 2>&1 || true
  rm -rf "$RUN"
}
trap cleanup EXIT INT TERM

dotnet build src/PgProxy -c Release --nologo -v quiet >/dev/null
dotnet build bench/IdleClients -c Release --nologo -v quiet >/dev/null
# PgProxy's build: the JIT one (dotnet pgproxy.dll) by default, or a native executable (PROXY_BIN=native publishes one).
PROXY=(dotnet src/PgProxy/bin/Release/net10.0/pgproxy.dll); BUILD="JIT build, dotnet pgproxy.dll"
if [ "$PROXY_BIN" = native ]; then
  echo "Publishing the native executable (scripts/publish.sh, 2-3 minutes)..." >&2
  PROXY_BIN=$(scripts/publish.sh "$RUN/publish")
fi
if [ -n "$PROXY_BIN" ]; then PROXY=("$PROXY_BIN"); BUILD="native executable, as the image ships"; fi
printf '%s\n' "$PASSWORD" > "$RUN/pw"
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$RUN/tls.key" -out "$RUN/tls.crt" -days 2 -subj "/CN=localhost" \
  -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" >/dev/null 2>&1
chmod 600 "$RUN/tls.key"
[ "$(id -u)" -eq 0 ] && chown -R postgres: "$RUN"
as_pg "$PG_BIN/initdb" -D "$RUN/data" -U postgres --auth-local=trust --auth-host=scram-sha-256 --pwfile="$RUN/pw" --no-sync >/dev/null
# max_connections: the direct 200-client scenario needs 200 while the six poolers (three pairs, pools of 20) may still
# hold up to 120 servers each other opened; at 300 the direct run was refused ("too many clients already").
as_pg "$PG_BIN/pg_ctl" -D "$RUN/data" -l "$RUN/pg.log" -w -o "-p $PG_PORT -k $RUN -c listen_addresses=127.0.0.1 -c max_connections=400 -c shared_buffers=128MB -c ssl=on -c ssl_cert_file=$RUN/tls.crt -c ssl_key_file=$RUN/tls.key" start >/dev/null
as_pg "$PG_BIN/psql" -h "$RUN" -p "$PG_PORT" -U postgres -qX -c "CREATE DATABASE bench" >/dev/null
export PGSSLMODE=disable # the scenarios that measure TLS ask for it themselves
PGPASSWORD=$PASSWORD "$PG_BIN/pgbench" -h 127.0.0.1 -p "$PG_PORT" -U postgres -i -s 10 -q bench >/dev/null 2>&1

printf '"postgres" "%s"\n' "$PASSWORD" > "$RUN/userlist.txt"
# One PgBouncer and one PgProxy per client auth method (trust, scram-sha-256), and a pair for TLS on both legs (trust),
# with the same settings otherwise.
POOLERS_BY="trust scram-sha-256 tls"
for auth in $POOLERS_BY; do
  case $auth in
    trust) bport=$BOUNCER_PORT; pport=$PROXY_PORT; server_tls=disable; method=trust;;
    scram-sha-256) bport=$BOUNCER_SCRAM_PORT; pport=$PROXY_SCRAM_PORT; server_tls=disable; method=scram-sha-256;;
    tls) bport=$BOUNCER_TLS_PORT; pport=$PROXY_TLS_PORT; server_tls=require; method=trust;;
  esac
  cat > "$RUN/pgbouncer-$auth.ini" <<INI
[databases]
bench = host=127.0.0.1 port=$PG_PORT dbname=bench
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $bport
unix_socket_dir =
auth_type = $method
auth_file = $RUN/userlist.txt
pool_mode = $POOL_MODE
default_pool_size = 20
max_client_conn = $((IDLE_CLIENTS + 1000))
logfile = $RUN/pgbouncer-$auth.log
client_tls_sslmode = allow
client_tls_cert_file = $RUN/tls.crt
client_tls_key_file = $RUN/tls.key
server_tls_sslmode = $server_tls
INI
  cat > "$RUN/proxy-$auth.toml" <<TOML
[proxy]
listen = "127.0.0.1:$pport"
pool_mode = "$POOL_MODE"
default_pool_size = 20
max_client_conn = $((IDLE_CLIENTS + 1000))
client_tls_sslmode = "allow"
client_tls_cert_file = "tls.crt"
client_tls_key_file = "tls.key"
server_tls_sslmode = "$server_tls"
[auth]
type = "$method"
file = "userlist.txt"
[log]
level = "info"
[http]
listen = ""
[databases.bench]
host = "127.0.0.1"
port = $PG_PORT
TOML
done
[ "$(id -u)" -eq 0 ] && chown -R postgres: "$RUN"
declare -A POOLER_PID
for auth in $POOLERS_BY; do
  # runuser resets the soft open-files limit to 1024: raise it in the shell that becomes PgBouncer.
  as_pg sh -c "ulimit -n $((IDLE_CLIENTS + 2000)) 2>/dev/null; exec $PGBOUNCER -q $RUN/pgbouncer-$auth.ini" & PIDS+=($!)
  "${PROXY[@]}" run --config "$RUN/proxy-$auth.toml" 2> "$RUN/pgproxy-$auth.log" & PIDS+=($!)
  POOLER_PID[pgproxy-$auth]=$!
done
sleep 3
for auth in $POOLERS_BY; do
  # PgBouncer in the foreground writes no pidfile: find it by its config path.
  p=$(pgrep -n -f "pgbouncer -q $RUN/pgbouncer-$auth.ini" || true)
  [ -n "$p" ] || { echo "PgBouncer ($auth) did not start:"; cat "$RUN/pgbouncer-$auth.log"; exit 1; }
  POOLER_PID[pgbouncer-$auth]=$p
  BOUNCER_PIDS+=" $p"
  kill -0 "${POOLER_PID[pgproxy-$auth]}" 2>/dev/null || { echo "PgProxy ($auth) did not start"; cat "$RUN/pgproxy-$auth.log"; exit 1; }
done
BOUNCER_PID=${POOLER_PID[pgbouncer-trust]}
PROXY_PID=${POOLER_PID[pgproxy-trust]}

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
TICK=$(getconf CLK_TCK)

steal_ticks() { awk '/^cpu / {print $9}' /proc/stat; }
all_ticks() { awk '/^cpu / {s = 0; for (i = 2; i <= NF; i++) s += $i; print s}' /proc/stat; }
# The machine's busy time: user, nice, system, irq and softirq of all cores (not idle, iowait or steal).
busy_ticks() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8}' /proc/stat; }
NCPU=$(nproc)
HAVE_PERF=0
if command -v perf >/dev/null && perf stat -e raw_syscalls:sys_enter -- true >/dev/null 2>&1; then HAVE_PERF=1; else echo "WARN: perf stat cannot count system calls here: no syscall figures" >&2; fi

# name|client auth|pgbench arguments. -M prepared runs one pgbench thread per client: pgbench prepares with a
# blocking call, which would otherwise stall a thread's other clients while they hold servers inside transactions.
if [ "$POOL_MODE" = session ]; then
  SCENARIOS=(
    "select-only, 20 clients|trust|-S -c 20 -j 2"
    "select-only, connection per transaction (-C), 20 clients|trust|-S -C -c 20 -j 2"
    "select-only, 1 client (latency)|trust|-S -c 1 -j 1"
    "TPC-B-like, 20 clients|trust|-c 20 -j 2"
  )
else
  SCENARIOS=(
    "select-only, 50 clients|trust|-S -c 50 -j 2"
    "select-only, 200 clients|trust|-S -c 200 -j 2"
    "select-only extended protocol, 50 clients|trust|-S -M extended -c 50 -j 2"
    "select-only prepared, 50 clients|trust|-S -M prepared -c 50 -j 50"
    "select-only, connection per transaction (-C), 20 clients|trust|-S -C -c 20 -j 2"
    "select-only, 1 client (latency)|trust|-S -c 1 -j 1"
    "TPC-B-like, 50 clients|trust|-c 50 -j 2"
    "select-only, 50 clients, SCRAM|scram-sha-256|-S -c 50 -j 2"
    "select-only, connection per transaction (-C), 20 clients, SCRAM|scram-sha-256|-S -C -c 20 -j 2"
    "select-only, 50 clients, TLS|tls|-S -c 50 -j 2"
    "select-only, connection per transaction (-C), 20 clients, TLS|tls|-S -C -c 20 -j 2"
  )
fi
# ONLY=<text> keeps the scenarios whose name contains it (while working on one figure; a published run has them all).
if [ -n "${ONLY:-}" ]; then
  kept=(); for s in "${SCENARIOS[@]}"; do [[ ${s%%|*} == *"$ONLY"* ]] && kept+=("$s"); done
  [ ${#kept[@]} -gt 0 ] || { echo "ONLY=$ONLY matches no scenario" >&2; exit 2; }
  SCENARIOS=("${kept[@]}")
fi
# Warm-up, not measured: JIT tiering (PgProxy) and server caches settle before the first round, for every target.
for port in $PG_PORT $BOUNCER_PORT $PROXY_PORT $BOUNCER_SCRAM_PORT $PROXY_SCRAM_PORT $BOUNCER_TLS_PORT $PROXY_TLS_PORT; do
  PGPASSWORD=$PASSWORD timeout 60 "$PG_BIN/pgbench" -h 127.0.0.1 -p "$port" -U postgres -n -T 5 -S -c 20 -j 2 bench >/dev/null 2>&1 || true
done

declare -A TPS CPU LAT SYS YIELD CEIL
steal_before=$(steal_ticks); all_before=$(all_ticks)
# The measured rounds, then (with perf) one more that only counts system calls: tracing them slows every call, so
# that round's TPS and CPU are not used.
LAST_ROUND=$ROUNDS; [ "$HAVE_PERF" = 1 ] && LAST_ROUND=$((ROUNDS + 1))
for ((round = 1; round <= LAST_ROUND; round++)); do
  counting=0; [ "$round" -gt "$ROUNDS" ] && counting=1
  for s in "${SCENARIOS[@]}"; do
    name=${s%%|*}; rest=${s#*|}; auth=${rest%%|*}; args=${rest#*|}
    # "tls": the TLS poolers (TLS on both legs), and pgbench asks for TLS.
    sslmode=disable; [ "$auth" = tls ] && sslmode=require
    # Alternate the order of targets each round.
    if (( round % 2 )); then targets="direct pgbouncer pgproxy"; else targets="pgproxy pgbouncer direct"; fi
    for t in $targets; do
      pid=""
      case $t in
        direct) port=$PG_PORT;;
        pgbouncer) pid=${POOLER_PID[pgbouncer-$auth]}
          case $auth in trust) port=$BOUNCER_PORT;; tls) port=$BOUNCER_TLS_PORT;; *) port=$BOUNCER_SCRAM_PORT;; esac;;
        pgproxy) pid=${POOLER_PID[pgproxy-$auth]}
          case $auth in trust) port=$PROXY_PORT;; tls) port=$PROXY_TLS_PORT;; *) port=$PROXY_SCRAM_PORT;; esac;;
      esac
      before=0; [ -n "$pid" ] && before=$(cpu_ticks "$pid")
      busy_before=$(busy_ticks)
      perf_out="$RUN/perf.out"; perf_pid=""
      if [ -n "$pid" ] && [ "$counting" = 1 ]; then
        perf stat -x, -e raw_syscalls:sys_enter,syscalls:sys_enter_sched_yield -p "$pid" -o "$perf_out" & perf_pid=$!
      fi
      # shellcheck disable=SC2086
      out=$(PGSSLMODE=$sslmode PGPASSWORD=$PASSWORD timeout $((DURATION + 60)) "$PG_BIN/pgbench" -h 127.0.0.1 -p "$port" -U postgres -n -T "$DURATION" $args bench 2>&1 || true)
      after=0; [ -n "$pid" ] && after=$(cpu_ticks "$pid")
      busy_after=$(busy_ticks)
      syscalls=""; yields=""
      if [ -n "$perf_pid" ]; then
        kill -INT "$perf_pid" 2>/dev/null || true; wait "$perf_pid" 2>/dev/null || true
        syscalls=$(awk -F, '/raw_syscalls:sys_enter/ {print $1}' "$perf_out"); yields=$(awk -F, '/sched_yield/ {print $1}' "$perf_out")
      fi
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
      # Pooler CPU (user + system) per transaction in microseconds, which is also milliseconds per 1000; in the
      # counting round, its system calls and sched_yield calls per transaction.
      # The ceiling: the TPS a pooler that cost no CPU at all could reach on this machine, when everything else
      # (pgbench, the server, the kernel's loopback) costs per transaction what it cost in this round: the cores
      # divided by the machine's busy time per transaction outside the pooler. A ratio to PgBouncer that the
      # ceiling does not allow is out of reach for any pooler here.
      cpu="-"; sys="-"; yld="-"; ceil="-"
      if [ -n "$pid" ] && [ "$tx" -gt 0 ] && [ "$tps" != "0" ]; then
        cpu=$(awk -v d=$((after - before)) -v t="$TICK" -v n="$tx" 'BEGIN {printf "%.1f", d / t / n * 1e6}')
        ceil=$(awk -v b=$((busy_after - busy_before)) -v p=$((after - before)) -v n="$tx" -v c="$NCPU" -v t="$TICK" \
          'BEGIN {if (b > p) printf "%.0f", c * t * n / (b - p); else print "-"}')
        [ -n "$syscalls" ] && sys=$(awk -v c="$syscalls" -v n="$tx" 'BEGIN {if (c ~ /^[0-9]+$/) printf "%.2f", c / n; else print "-"}')
        [ -n "$yields" ] && yld=$(awk -v c="$yields" -v n="$tx" 'BEGIN {if (c ~ /^[0-9]+$/) printf "%.3f", c / n; else print "-"}')
      fi
      if [ "$counting" = 1 ]; then
        SYS["$name|$t"]+="$sys "; YIELD["$name|$t"]+="$yld "
        echo "syscall round  $t  $name: syscalls_per_tx=$sys sched_yield_per_tx=$yld" >&2
      else
        TPS["$name|$t"]+="$tps "; CPU["$name|$t"]+="$cpu "; LAT["$name|$t"]+="$lat "; CEIL["$name|$t"]+="$ceil "
        echo "round $round  $t  $name: tps=$tps latency=${lat}ms cpu_us_per_tx=$cpu ceiling_tps=$ceil" >&2
      fi
    done
  done
done
steal_after=$(steal_ticks); all_after=$(all_ticks)
STEAL=$(awk -v s=$((steal_after - steal_before)) -v a=$((all_after - all_before)) 'BEGIN {if (a > 0) printf "%.1f", s * 100 / a; else print "-"}')

median() { tr ' ' '\n' | grep -v '^$' | grep -v '^-$' | sort -g | awk '{a[NR]=$1} END {if (NR==0) print "-"; else if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
minmax() { tr ' ' '\n' | grep -v '^$' | sort -g | awk 'NR==1{min=$1} {max=$1} END {printf "%.0f-%.0f", min, max}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (b > 0 && a != "-" && b != "-" && a > 0) printf "%.2f", a / b; else print "-"}'; }
shown() { awk -v v="$1" 'BEGIN {if (v == "-" || v == 0) print "failed"; else printf "%.0f", v}'; }

# Idle clients: IDLE_CLIENTS connections log in through each pooler and stay idle; resident memory before and after.
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
declare -A IDLE
if [ "$POOL_MODE" = transaction ] && [ "$IDLE_CLIENTS" -gt 0 ]; then
  IDLE_TOOL=bench/IdleClients/bin/Release/net10.0/IdleClients.dll
  for t in pgbouncer pgproxy; do
    case $t in pgbouncer) port=$BOUNCER_PORT; pid=$BOUNCER_PID;; pgproxy) port=$PROXY_PORT; pid=$PROXY_PID;; esac
    sleep 2
    before=$(rss_kb "$pid")
    fifo="$RUN/idle-$t.out"; : > "$fifo"
    # The tool holds its connections until killed (or 600 s).
    timeout 900 dotnet "$IDLE_TOOL" "Host=127.0.0.1;Port=$port;Username=postgres;Password=$PASSWORD;Database=bench;SSL Mode=Disable" "$IDLE_CLIENTS" 600 > "$fifo" 2>&1 &
    holder=$!
    for _ in $(seq 1 600); do grep -q READY "$fifo" && break; kill -0 "$holder" 2>/dev/null || break; sleep 1; done
    sleep 8 # idle longer than PgProxy's memory_trim_delay (5 s), after which it returns the logins' garbage
    after=$(rss_kb "$pid")
    ready=$(grep -m1 READY "$fifo" || tail -2 "$fifo")
    kill "$holder" 2>/dev/null || true
    pkill -f "$IDLE_TOOL.*Port=$port;" 2>/dev/null || true
    wait "$holder" 2>/dev/null || true
    opened=$(echo "$ready" | sed -n 's/.*opened=\([0-9]*\).*/\1/p'); opened=${opened:-0}
    per=$(awk -v a="$after" -v b="$before" -v n="$opened" 'BEGIN {if (n > 0) printf "%.0f", (a - b) * 1024 / n; else print "-"}')
    IDLE[$t]="$before|$after|$opened|$per"
    echo "idle $t: rss ${before} kB -> ${after} kB with $opened idle clients ($per bytes per client): $ready" >&2
  done
fi

mkdir -p "$OUT"
REPORT="$OUT/latest-$POOL_MODE.md"
CHART="$OUT/latest-$POOL_MODE.png"
DATA="$RUN/chart.dat"
: > "$DATA"
{
  echo "# PgProxy vs PgBouncer vs direct ($(date -u +%Y-%m-%d), $POOL_MODE mode, pool 20, $ROUNDS rounds x ${DURATION}s)"
  echo
  echo "Command: \`${PROXY_SPEC:+PROXY_BIN=$PROXY_SPEC }ROUNDS=$ROUNDS DURATION=$DURATION POOL_MODE=$POOL_MODE bench/load/compare.sh\` on $(nproc) cores, PgProxy's $BUILD, $(uname -r); PgBouncer $("$PGBOUNCER" --version 2>/dev/null | head -1 | awk '{print $2}'), PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}'). Client auth trust unless the scenario says SCRAM (server logins SCRAM); both poolers log connections, as by default. CPU steal during the load: ${STEAL}%. TPS are medians over the rounds; \"failed\" means the target could not run the scenario (see the warnings in the run's output). Pooler CPU is user + system time of the pooler process per transaction (µs, which is also ms per 1000 transactions); system calls per transaction are counted by \`perf stat -e raw_syscalls:sys_enter\` on the pooler process in one extra round, not used for the other figures. The ceiling is the TPS a pooler that used no CPU at all could reach here: the cores divided by the machine's busy time (/proc/stat) per transaction outside the pooler, median over both poolers' rounds; a PgProxy / PgBouncer ratio above ceiling / PgBouncer cannot be reached on this machine by any pooler."
  echo
  echo "| scenario | direct TPS | PgBouncer TPS | PgProxy TPS (min-max) | PgProxy / PgBouncer | PgProxy / direct | latency ms direct / PgBouncer / PgProxy | pooler CPU µs per tx PgBouncer / PgProxy (ratio) | syscalls per tx PgBouncer / PgProxy | sched_yield per tx PgBouncer / PgProxy | ceiling TPS (/ PgBouncer) |"
  echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
  i=0
  for s in "${SCENARIOS[@]}"; do
    name=${s%%|*}
    d=$(echo "${TPS[$name|direct]}" | median); b=$(echo "${TPS[$name|pgbouncer]}" | median); p=$(echo "${TPS[$name|pgproxy]}" | median)
    cb=$(echo "${CPU[$name|pgbouncer]}" | median); cp=$(echo "${CPU[$name|pgproxy]}" | median)
    ld=$(echo "${LAT[$name|direct]}" | median); lb=$(echo "${LAT[$name|pgbouncer]}" | median); lp=$(echo "${LAT[$name|pgproxy]}" | median)
    extra=""
    case $name in *"1 client"*)
      extra=" (added per query: PgBouncer $(awk -v a="$lb" -v b="$ld" 'BEGIN {printf "%.0f", (a - b) * 1000}') µs, PgProxy $(awk -v a="$lp" -v b="$ld" 'BEGIN {printf "%.0f", (a - b) * 1000}') µs)";;
    esac
    sb=$(echo "${SYS[$name|pgbouncer]}" | median); sp=$(echo "${SYS[$name|pgproxy]}" | median)
    yb=$(echo "${YIELD[$name|pgbouncer]}" | median); yp=$(echo "${YIELD[$name|pgproxy]}" | median)
    ce=$(echo "${CEIL[$name|pgbouncer]} ${CEIL[$name|pgproxy]}" | median)
    echo "| $name | $(shown "$d") | $(shown "$b") | $(shown "$p") ($(echo "${TPS[$name|pgproxy]}" | minmax)) | $(ratio "$p" "$b") | $(ratio "$p" "$d") | $ld / $lb / $lp$extra | $cb / $cp ($(ratio "$cp" "$cb")) | $sb / $sp | $yb / $yp | $(shown "$ce") ($(ratio "$ce" "$b")) |"
    i=$((i + 1))
    short=$(echo "$name" | sed -e 's/select-only/S/' -e 's/ extended protocol/ extended/' -e 's/connection per transaction (-C)/-C/' -e 's/ (latency)//' -e 's/, / /g' -e 's/ clients\{0,1\}//')
    rb=$(awk -v a="$b" -v d="$d" 'BEGIN {if (d > 0 && a != "-") printf "%.3f", a / d; else print 0}')
    rp=$(awk -v a="$p" -v d="$d" 'BEGIN {if (d > 0 && a != "-") printf "%.3f", a / d; else print 0}')
    echo "$i \"$short\" $rb $rp $( [ "$cb" = "-" ] && echo 0 || echo "$cb") $( [ "$cp" = "-" ] && echo 0 || echo "$cp")" >> "$DATA"
  done
  if [ -n "${IDLE[pgproxy]:-}" ]; then
    echo
    echo "Idle clients ($IDLE_CLIENTS logged in, idle; resident memory of the pooler process before and after):"
    echo
    echo "| pooler | RSS before | RSS after | clients | bytes per idle client |"
    echo "| --- | --- | --- | --- | --- |"
    for t in pgbouncer pgproxy; do
      IFS='|' read -r before after opened per <<< "${IDLE[$t]}"
      echo "| $t | $((before / 1024)) MiB | $((after / 1024)) MiB | $opened | $per |"
    done
  fi
} > "$REPORT"
cat "$REPORT"

if command -v gnuplot >/dev/null; then
  gnuplot <<GP
set terminal pngcairo size 1200,760 font "DejaVu Sans,10" noenhanced
set output "$CHART"
set multiplot layout 2,1 title "PgProxy vs PgBouncer, $POOL_MODE mode, pool 20 ($(date -u +%Y-%m-%d), $(nproc) cores, medians of $ROUNDS x ${DURATION}s)"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set grid ytics
set key top right
set yrange [0:*]
set xtics nomirror
set ylabel "TPS / direct TPS"
plot "$DATA" using 3:xtic(2) title "PgBouncer" lc rgb "#888888", "" using 4 title "PgProxy" lc rgb "#2a7ab0", 1 with lines dt 2 lc rgb "#444444" title "direct"
set ylabel "pooler CPU µs per transaction (log scale)"
set logscale y
set yrange [1:*]
plot "$DATA" using 5:xtic(2) title "PgBouncer" lc rgb "#888888", "" using 6 title "PgProxy" lc rgb "#2a7ab0"
unset multiplot
GP
  echo "Chart: $CHART"
fi

if [ "$UPDATE_README" = 1 ] && [ "$POOL_MODE" = transaction ]; then
  # Replace the README's table between its markers with this run's.
  awk -v report="$REPORT" '
    /<!-- bench:start -->/ {print; while ((getline line < report) > 0) if (line !~ /^# /) print line; skip = 1; next}
    /<!-- bench:end -->/ {skip = 0}
    !skip {print}' README.md > "$RUN/README.md" && cp "$RUN/README.md" README.md
  echo "README.md updated."
fi
