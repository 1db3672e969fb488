#!/usr/bin/env bash
# The costs a pooler pays outside transactions, PgProxy against PgBouncer in one run, each pooler a fresh process:
#  - resident memory per idle client as clients log in and stay idle, in steps (default 5000, then up to 15000);
#  - PgProxy's live managed heap per idle client at each step (dotnet-gcdump, a full GC), beside the RSS (JIT build only:
#    the tool cannot attach to a Native AOT process);
#  - CPU per login (startup to ReadyForQuery), with trust and with SCRAM when both poolers verify from the same
#    stored verifier (userlist holds PostgreSQL's SCRAM-SHA-256$... secret, so neither runs PBKDF2 per login);
#  - CPU while the clients sit idle (no timeouts configured, then with client_idle_timeout set far in the future).
# After a step's logins the clients sit idle SETTLE_SECONDS (8) before its memory is read, longer than PgProxy's
# memory_trim_delay (5 s): what the pooler does in that time (PgProxy's heap compaction) is its own row, CPU per login.
# Three poolers by default, each a column: PgBouncer; "pgproxy", the Native AOT executable the image ships
# (scripts/publish.sh, or PROXY_BIN); "pgproxy-jit", the build `dotnet pgproxy.dll` runs (scripts/dev.sh; or PROXY_DLL).
# A fourth, "pgproxy-1thread", is the native executable with [proxy] io_threads = 1.
# Writes bench/results/latest-idle.md. Bounded: every holder process exits by itself; every wait has a cap.
#   bench/load/idle.sh                       # steps 5000 15000
#   STEPS="1000 3000" bench/load/idle.sh     # smaller
#   UPDATE_README=1 bench/load/idle.sh       # also puts the table into README.md
#   POOLERS=pgproxy-jit PROXY_ENV="DOTNET_GCgen0size=0x400000" bench/load/idle.sh   # try a runtime setting
#   PROXY_DLL=/tmp/old/pgproxy.dll POOLERS=pgproxy-jit bench/load/idle.sh           # another JIT build
#   PROXY_BIN=/tmp/aot/pgproxy POOLERS=pgproxy bench/load/idle.sh                   # another native executable
#   POOLERS="pgbouncer pgproxy pgproxy-1thread" bench/load/idle.sh                 # one socket thread beside the default
#   PROXY_SETTINGS="client_login_timeout = \"5s\"" bench/load/idle.sh   # lines added to every PgProxy's [proxy]
#   LOGIN_ROUNDS=5 bench/load/idle.sh        # more rounds of the login rows (default 3)
# The two login rows the goals compare (trust over the first step, SCRAM) vary by a fifth from run to run on a shared
# machine, PgBouncer's as much as PgProxy's: they are measured LOGIN_ROUNDS times, each time in a fresh process of
# every pooler in turn (the first round is the memory run's own), and the table shows the median and the range.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
STEPS=${STEPS:-"5000 15000"}
SCRAM_LOGINS=${SCRAM_LOGINS:-3000}
LOGIN_ROUNDS=${LOGIN_ROUNDS:-3}
IDLE_SECONDS=${IDLE_SECONDS:-10}
SETTLE_SECONDS=${SETTLE_SECONDS:-8}
OUT=${OUT:-$ROOT/bench/results}
UPDATE_README=${UPDATE_README:-0}
DEFAULT_POOLERS="pgbouncer pgproxy pgproxy-jit"
POOLERS=${POOLERS:-$DEFAULT_POOLERS}
PROXY_ENV=${PROXY_ENV:-}
PROXY_SETTINGS=${PROXY_SETTINGS:-}
scripts/ensure-deps.sh
if ! command -v pgbouncer >/dev/null && [ ! -x /usr/sbin/pgbouncer ]; then
  echo "Installing PgBouncer from Debian packages..."
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pgbouncer >/dev/null
fi
PGBOUNCER=$(command -v pgbouncer || echo /usr/sbin/pgbouncer)
PG_BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
MAX=0; for s in $STEPS; do [ "$s" -gt "$MAX" ] && MAX=$s; done
ulimit -n 20000 2>/dev/null || true
if [ "$(ulimit -n)" -lt $((MAX + 200)) ]; then
  echo "the open-files limit ($(ulimit -n)) is below $((MAX + 200)): lower STEPS" >&2; exit 1
fi
RUN=$(mktemp -d /tmp/pgproxy-idle.XXXXXX)
chmod 755 "$RUN"
PG_PORT=15532; POOLER_PORT=16532
PASSWORD=bench-secret
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
POOLER=""; HOLDERS=()
stop_holders() { for h in "${HOLDERS[@]}"; do kill "$h" 2>/dev/null || true; done; for h in "${HOLDERS[@]}"; do wait "$h" 2>/dev/null || true; done; HOLDERS=(); }
stop_pooler() { [ -n "$POOLER" ] && { kill "$POOLER" 2>/dev/null || true; for _ in $(seq 1 50); do kill -0 "$POOLER" 2>/dev/null || break; sleep 0.2; done; kill -9 "$POOLER" 2>/dev/null || true; }; POOLER=""; }
cleanup() {
  stop_holders; stop_pooler
  as_pg "$PG_BIN/pg_ctl" -D "$RUN/data" -m fast -w stop >/dev/null 2>&1 || true
  rm -rf "$RUN"
}
trap cleanup EXIT INT TERM

dotnet build src/PgProxy -c Release --nologo -v quiet >/dev/null
dotnet build bench/IdleClients -c Release --nologo -v quiet >/dev/null
PROXY_DLL=${PROXY_DLL:-src/PgProxy/bin/Release/net10.0/pgproxy.dll}
PROXY_BIN=${PROXY_BIN:-}
if [[ " $POOLERS " == *" pgproxy "* || " $POOLERS " == *" pgproxy-1thread "* ]] && [ -z "$PROXY_BIN" ]; then
  echo "Publishing the native executable (scripts/publish.sh, 2-3 minutes)..." >&2
  PROXY_BIN=$(scripts/publish.sh "$RUN/publish")
fi
IDLE_TOOL=bench/IdleClients/bin/Release/net10.0/IdleClients.dll
GCDUMP=""
if dotnet tool install dotnet-gcdump --tool-path "$RUN/tools" >/dev/null 2>&1; then GCDUMP="$RUN/tools/dotnet-gcdump"; else echo "WARN: no dotnet-gcdump: no live-heap figures" >&2; fi

printf '%s\n' "$PASSWORD" > "$RUN/pw"
[ "$(id -u)" -eq 0 ] && chown -R postgres: "$RUN"
as_pg "$PG_BIN/initdb" -D "$RUN/data" -U postgres --auth-local=trust --auth-host=scram-sha-256 --pwfile="$RUN/pw" --no-sync >/dev/null
as_pg "$PG_BIN/pg_ctl" -D "$RUN/data" -l "$RUN/pg.log" -w -o "-p $PG_PORT -k $RUN -c listen_addresses=127.0.0.1 -c max_connections=100" start >/dev/null
as_pg "$PG_BIN/psql" -h "$RUN" -p "$PG_PORT" -U postgres -qX -c "CREATE DATABASE bench" >/dev/null
VERIFIER=$(as_pg "$PG_BIN/psql" -h "$RUN" -p "$PG_PORT" -U postgres -qXAt -c "SELECT rolpassword FROM pg_authid WHERE rolname = 'postgres'")
printf '"postgres" "%s"\n' "$PASSWORD" > "$RUN/userlist-plain.txt"
printf '"postgres" "%s"\n' "$VERIFIER" > "$RUN/userlist-verifier.txt"

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
# CPU of a process over an interval, in microseconds: perf's task-clock (every thread, exact) where perf can count,
# otherwise user + system clock ticks from /proc (10 ms resolution).
HAVE_PERF=0
if command -v perf >/dev/null && perf stat -e task-clock -- true >/dev/null 2>&1; then HAVE_PERF=1; else echo "WARN: no perf: CPU in 10 ms ticks" >&2; fi
TICK=$(getconf CLK_TCK)
CPU_PERF=""; CPU_T0=0
# The clock ticks are read as well: a perf that counted nothing (it happened once, for one of PgBouncer's steps) falls
# back to them, with a warning, rather than reporting 0.
cpu_begin() {
  CPU_T0=$(awk '{print $14 + $15}' "/proc/$1/stat")
  if [ "$HAVE_PERF" = 1 ]; then rm -f "$RUN/cpu.out"; perf stat -x, -e task-clock -p "$1" -o "$RUN/cpu.out" & CPU_PERF=$!; sleep 0.3; fi
}
cpu_end_us() {
  local ticks perf_us=""
  if [ "$HAVE_PERF" = 1 ]; then
    kill -INT "$CPU_PERF" 2>/dev/null || true; wait "$CPU_PERF" 2>/dev/null || true
    perf_us=$(awk -F, '/task-clock/ && $1 + 0 > 0 {printf "%.0f", $1 * 1000}' "$RUN/cpu.out" 2>/dev/null)
  fi
  ticks=$(awk -v t0="$CPU_T0" -v t="$TICK" '{printf "%.0f", ($14 + $15 - t0) / t * 1e6}' "/proc/$1/stat")
  if [ -n "$perf_us" ]; then echo "$perf_us"; return; fi
  [ "$HAVE_PERF" = 1 ] && [ "$ticks" -gt 0 ] && echo "WARN: perf counted nothing for pid $1: CPU in 10 ms ticks" >&2
  echo "$ticks"
}

# start_pooler NAME AUTH USERLIST [IDLE_TIMEOUT]: a fresh pooler process on POOLER_PORT; sets POOLER.
start_pooler() {
  local name=$1 auth=$2 userlist=$3 idle_timeout=${4:-0}
  case $name in
    pgbouncer)
      cat > "$RUN/pgbouncer.ini" <<INI
[databases]
bench = host=127.0.0.1 port=$PG_PORT dbname=bench
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $POOLER_PORT
unix_socket_dir =
auth_type = $auth
auth_file = $userlist
pool_mode = transaction
default_pool_size = 20
max_client_conn = $((MAX + 100))
client_idle_timeout = $idle_timeout
logfile = $RUN/pgbouncer.log
INI
      [ "$(id -u)" -eq 0 ] && chown postgres: "$RUN/pgbouncer.ini"
      # runuser reports its child's end on stderr ("Session terminated"): quiet.
      as_pg sh -c "ulimit -n $((MAX + 200)); exec $PGBOUNCER -q $RUN/pgbouncer.ini" 2>/dev/null &
      local p=""
      for _ in $(seq 1 50); do p=$(pgrep -n -u postgres -f "pgbouncer -q $RUN/pgbouncer.ini" || true); [ -n "$p" ] && break; sleep 0.1; done
      [ -n "$p" ] || { echo "PgBouncer did not start"; cat "$RUN/pgbouncer.log"; exit 1; }
      POOLER=$p;;
    pgproxy|pgproxy-jit|pgproxy-1thread)
      local threads=""; [ "$name" = pgproxy-1thread ] && threads="io_threads = 1"
      cat > "$RUN/proxy.toml" <<TOML
[proxy]
listen = "127.0.0.1:$POOLER_PORT"
pool_mode = "transaction"
default_pool_size = 20
max_client_conn = $((MAX + 100))
client_idle_timeout = "${idle_timeout}s"
$threads
$PROXY_SETTINGS
[auth]
type = "$auth"
file = "$userlist"
[log]
level = "info"
[http]
listen = ""
[databases.bench]
host = "127.0.0.1"
port = $PG_PORT
TOML
      # pgproxy-jit runs the .dll on the shared runtime; the others the native executable.
      launcher=("$PROXY_BIN"); [ "$name" = pgproxy-jit ] && launcher=(dotnet "$PROXY_DLL")
      # shellcheck disable=SC2086
      env $PROXY_ENV "${launcher[@]}" run --config "$RUN/proxy.toml" 2> "$RUN/pgproxy.log" &
      POOLER=$!;;
  esac
  for _ in $(seq 1 100); do
    PGPASSWORD=$PASSWORD "$PG_BIN/psql" -h 127.0.0.1 -p "$POOLER_PORT" -U postgres -qXAt -c "SELECT 1" bench >/dev/null 2>&1 && break
    kill -0 "$POOLER" 2>/dev/null || { echo "$name did not start"; cat "$RUN/pgproxy.log" "$RUN/pgbouncer.log" 2>/dev/null; exit 1; }
    sleep 0.2
  done
  sleep 2
}

# open_clients N: a holder process logs N more clients in (they stay idle); sets OPENED to how many logged in.
OPENED=0
open_clients() {
  local n=$1 out="$RUN/holder-${#HOLDERS[@]}.out"
  : > "$out"
  timeout 900 dotnet "$IDLE_TOOL" "Host=127.0.0.1;Port=$POOLER_PORT;Username=postgres;Password=$PASSWORD;Database=bench" "$n" 600 > "$out" 2>&1 &
  HOLDERS+=($!)
  for _ in $(seq 1 600); do grep -q READY "$out" && break; kill -0 "${HOLDERS[-1]}" 2>/dev/null || break; sleep 0.5; done
  OPENED=0
  grep -q READY "$out" || { echo "WARN: holder did not get ready: $(tail -2 "$out")" >&2; return; }
  grep -m1 READY "$out" | grep -q 'failed=0' || echo "WARN: $(grep -m1 READY "$out")" >&2
  OPENED=$(grep -m1 READY "$out" | sed -n 's/.*opened=\([0-9]*\).*/\1/p')
}

# live_heap_kb PID: the managed heap that survives a full GC (PgProxy only), in kB; "-" without the tool.
live_heap_kb() {
  [ -n "$GCDUMP" ] || { echo "-"; return; }
  local f="$RUN/heap-$RANDOM.gcdump"
  if timeout 120 "$GCDUMP" collect -p "$1" -o "$f" >/dev/null 2>&1; then
    timeout 120 "$GCDUMP" report "$f" 2>/dev/null | awk '/GC Heap bytes/ {gsub(",", "", $1); printf "%.0f", $1 / 1024; exit}'
    rm -f "$f"
  else
    echo "-"
  fi
}

declare -A R L
for t in $POOLERS; do
  # Memory, login CPU and idle CPU with trust, steps of clients; no timeouts configured.
  start_pooler "$t" trust "$RUN/userlist-plain.txt"
  # The live-heap probe (dotnet-gcdump) leaves its own buffers in the process: take the first one before the
  # baseline, so that no step's resident growth counts the measuring tool's one-time cost.
  heap0="-"; [ "$t" = pgproxy-jit ] && heap0=$(live_heap_kb "$POOLER") && sleep 1
  rss0=$(rss_kb "$POOLER")
  prev=0; prev_rss=$rss0; prev_heap=$heap0
  for step in $STEPS; do
    cpu_begin "$POOLER"
    open_clients $((step - prev)); opened=$OPENED
    login_cpu=$(cpu_end_us "$POOLER")
    cpu_begin "$POOLER"; sleep "$SETTLE_SECONDS"; settle_cpu=$(cpu_end_us "$POOLER")
    rss=$(rss_kb "$POOLER")
    cpu_begin "$POOLER"; sleep "$IDLE_SECONDS"; idle_cpu=$(cpu_end_us "$POOLER")
    heap="-"; [ "$t" = pgproxy-jit ] && heap=$(live_heap_kb "$POOLER")
    login_us=$(awk -v d="$login_cpu" -v n="$opened" 'BEGIN {if (n > 0) printf "%.0f", d / n; else print "-"}')
    settle_us=$(awk -v d="$settle_cpu" -v n="$opened" 'BEGIN {if (n > 0) printf "%.1f", d / n; else print "-"}')
    per=$(awk -v a="$rss" -v b="$prev_rss" -v n="$opened" 'BEGIN {if (n > 0) printf "%.0f", (a - b) * 1024 / n; else print "-"}')
    heap_per=$(awk -v a="$heap" -v b="$prev_heap" -v n="$opened" 'BEGIN {if (n > 0 && a != "-" && b != "-") printf "%.0f", (a - b) * 1024 / n; else print "-"}')
    idle_ms=$(awk -v d="$idle_cpu" -v s="$IDLE_SECONDS" 'BEGIN {printf "%.2f", d / s / 1000}')
    R["$t|$step"]="$opened|$rss|$per|$heap_per|$login_us|$idle_ms|$settle_us"
    [ "$prev" = 0 ] && L["$t|trust"]="$login_us"
    echo "$t trust step $step: opened $opened, rss ${rss} kB ($per B per client of this step), live heap $heap kB ($heap_per B per client), login $login_us us CPU, settling $settle_us us CPU per login, idle $idle_ms ms CPU per s" >&2
    prev=$step; prev_rss=$rss; prev_heap=$heap
  done
  stop_holders; stop_pooler

  # Idle CPU with a client_idle_timeout that never fires during the run (an hour): the deadlines' own cost.
  start_pooler "$t" trust "$RUN/userlist-plain.txt" 3600
  first=${STEPS%% *}
  open_clients "$first"; opened=$OPENED
  sleep "$SETTLE_SECONDS"
  cpu_begin "$POOLER"; sleep "$IDLE_SECONDS"; idle_cpu=$(cpu_end_us "$POOLER")
  R["$t|timeout"]=$(awk -v d="$idle_cpu" -v s="$IDLE_SECONDS" 'BEGIN {printf "%.2f", d / s / 1000}')
  echo "$t with client_idle_timeout: $opened idle clients, ${R[$t|timeout]} ms CPU per s" >&2
  stop_holders; stop_pooler

  # CPU per login with SCRAM, both poolers verifying from PostgreSQL's stored verifier (server logins by passthrough).
  start_pooler "$t" scram-sha-256 "$RUN/userlist-verifier.txt"
  cpu_begin "$POOLER"
  open_clients "$SCRAM_LOGINS"; opened=$OPENED
  login_cpu=$(cpu_end_us "$POOLER")
  L["$t|scram"]=$(awk -v d="$login_cpu" -v n="$opened" 'BEGIN {if (n > 0) printf "%.0f", d / n; else print "-"}')
  echo "$t SCRAM (stored verifier): $opened logins, ${L[$t|scram]} us CPU per login" >&2
  stop_holders; stop_pooler
done

# More rounds of the two login rows, every pooler in turn in each round, each a fresh process: trust over as many
# logins as the first step, and SCRAM.
first=${STEPS%% *}
for round in $(seq 2 "$LOGIN_ROUNDS"); do
  for t in $POOLERS; do
    start_pooler "$t" trust "$RUN/userlist-plain.txt"
    cpu_begin "$POOLER"; open_clients "$first"; opened=$OPENED; login_cpu=$(cpu_end_us "$POOLER")
    L["$t|trust"]+=" $(awk -v d="$login_cpu" -v n="$opened" 'BEGIN {if (n > 0) printf "%.0f", d / n; else print "-"}')"
    stop_holders; stop_pooler
    start_pooler "$t" scram-sha-256 "$RUN/userlist-verifier.txt"
    cpu_begin "$POOLER"; open_clients "$SCRAM_LOGINS"; opened=$OPENED; login_cpu=$(cpu_end_us "$POOLER")
    L["$t|scram"]+=" $(awk -v d="$login_cpu" -v n="$opened" 'BEGIN {if (n > 0) printf "%.0f", d / n; else print "-"}')"
    stop_holders; stop_pooler
    echo "$t login round $round: trust ${L[$t|trust]##* } us, SCRAM ${L[$t|scram]##* } us CPU per login" >&2
  done
done

mkdir -p "$OUT"
REPORT="$OUT/latest-idle.md"
{
  echo "# Idle clients and logins, PgProxy vs PgBouncer ($(date -u +%Y-%m-%d), each pooler a fresh process)"
  echo
  poolers_spec=""; [ "$POOLERS" != "$DEFAULT_POOLERS" ] && poolers_spec=" POOLERS=\"$POOLERS\""
  echo "Command: \`STEPS=\"$STEPS\"$poolers_spec${PROXY_SETTINGS:+ PROXY_SETTINGS=\"$PROXY_SETTINGS\"} bench/load/idle.sh\`${LOGIN_ROUNDS:+ (LOGIN_ROUNDS=$LOGIN_ROUNDS)} on $(nproc) cores; PgBouncer $("$PGBOUNCER" --version 2>/dev/null | head -1 | awk '{print $2}'), transaction mode, pool 20, both logging connections. Clients (Npgsql, no pooling, no type loading) log in and stay idle. Memory is the pooler's resident set (VmRSS) growth over the step divided by the clients it added, read once the step's clients have sat idle ${SETTLE_SECONDS} s (longer than PgProxy's memory_trim_delay, 5 s: the CPU it spends on that compaction is the row after the login row, per login of the step); PgProxy's live heap is what survives a full GC (dotnet-gcdump, which attaches to the JIT build only). CPU per login is the pooler's CPU time (perf task-clock, all threads) while the step's clients logged in, divided by their number. Idle CPU is measured over ${IDLE_SECONDS} s with every client idle."
  echo
  # One column per pooler, in POOLERS order; a cell is "-" where that figure was not measured.
  declare -A TITLE=([pgbouncer]="PgBouncer" [pgproxy]="PgProxy (native, as the image ships)" [pgproxy-jit]="PgProxy (JIT, dotnet pgproxy.dll)" [pgproxy-1thread]="PgProxy (native, io_threads = 1)")
  row() { local line="| $1 |" t; shift; for t in $POOLERS; do line+=" $("$@" "$t") |"; done; echo "$line"; }
  field() { local v; IFS='|' read -r -a v <<< "${R[$2|$1]:--|-|-|-|-|-|-}"; echo "${v[$3]}"; }
  memory() { local per heap; per=$(field "$step" "$1" 2); heap=$(field "$step" "$1" 3); [ "$heap" = - ] && echo "$per B" || echo "$per B (live heap $heap B)"; }
  login() { echo "$(field "$step" "$1" 4) µs"; }
  idle() { echo "$(field "$step" "$1" 5) ms/s"; }
  settle() { echo "$(field "$step" "$1" 6) µs"; }
  simple() { echo "${R[$1|$KEY]:--} $UNIT"; }
  # "median µs (min-max, N fresh processes)" of a login row's rounds.
  rounds() {
    # Rounds that logged no client in ("-") are left out here, in awk: a grep that matched nothing would fail the
    # pipeline, and with it (set -e) the whole report.
    echo "${L[$1|$KEY]:--}" | tr ' ' '\n' | sort -n |
      awk '/^[0-9]+$/ {v[++n] = $1} END {if (n == 0) {print "-"; exit} m = (n % 2) ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
        printf "%s µs (%s-%s, %d fresh processes)", m, v[1], v[n], n}'
  }
  header="| figure |"; sep="| --- |"
  for t in $POOLERS; do header+=" ${TITLE[$t]} |"; sep+=" --- |"; done
  echo "$header"; echo "$sep"
  prev=0
  for step in $STEPS; do
    range="clients $((prev + 1))-$step"
    row "resident memory per idle client, $range" memory
    if [ "$prev" = 0 ]; then KEY=trust row "CPU per login (trust), $range, median of $LOGIN_ROUNDS rounds" rounds
    else row "CPU per login (trust), $range" login; fi
    row "CPU in the ${SETTLE_SECONDS} s after those logins (PgProxy's memory trim), per login" settle
    row "CPU while $step clients sit idle, no timeouts" idle
    prev=$step
  done
  KEY=timeout UNIT=ms/s row "CPU while ${STEPS%% *} clients sit idle, client_idle_timeout = 1 h" simple
  KEY=scram row "CPU per login (SCRAM, stored verifier, $SCRAM_LOGINS logins), median of $LOGIN_ROUNDS rounds" rounds
} > "$REPORT"
cat "$REPORT"

if [ "$UPDATE_README" = 1 ]; then
  awk -v report="$REPORT" '
    /<!-- idle:start -->/ {print; while ((getline line < report) > 0) if (line !~ /^# /) print line; skip = 1; next}
    /<!-- idle:end -->/ {skip = 0}
    !skip {print}' README.md > "$RUN/README.md" && cp "$RUN/README.md" README.md
  echo "README.md updated."
fi
