#!/usr/bin/env bash
# bench/run.sh: the employee-api benchmark suite, one command (from anywhere; run as root on
# a fresh machine so that it can install what is missing):
#
#     bench/run.sh
#     N=100000 DURATION=5s bench/run.sh                  # quicker
#     BACKENDS=postgres PEER=1 bench/run.sh              # PostgreSQL, side by side with the original
#     SKIP_BUILD=1 SCENARIOS="get_by_id list_default" BACKENDS=sqlite bench/run.sh
#
# What it does (details in bench/README.md):
#   1. installs what is missing (wrk, PostgreSQL server + client with pgbench, curl) with
#      apt-get, starts the local PostgreSQL cluster if it is down;
#   2. cargo build --release (SKIP_BUILD=1 skips it; BIN= picks another binary);
#   3. pgbench -i -s 10 into its own database, pgbench -S -M prepared at the same concurrency
#      (run before and after the API scenarios; the mean is the reference for the ratios);
#   4. per backend: `employee-api migrate`, loads N generated rows (bench/gen_data.py; skipped
#      when already there), starts `employee-api serve` on 127.0.0.1, logs in, and drives every
#      scenario with wrk (bench/lua/*.lua); samples the server's VmHWM (peak RSS) and CPU;
#   5. PEER=1: the original FastAPI service (../shared/peer) on the same PostgreSQL, same
#      rows (its own database), read scenarios only; Rust/peer ratios;
#   6. prints a markdown table and writes it to bench/results/<date>.md.
#
# Environment (all optional):
#   N=1000000            rows in the dataset
#   DURATION=10s         per scenario (wrk -d; also pgbench -T); WARMUP=2s before each read scenario (0 = none)
#   CONNECTIONS=32       concurrent connections (wrk -c, pgbench -c); THREADS=2 (wrk -t, pgbench -j)
#   AUTH_CONNECTIONS=4   for POST /auth/token (Argon2-bound)
#   BACKENDS="sqlite postgres"
#   PEER=0               1 = also run the original FastAPI service (needs root, PyPI for its venv)
#   PEER_WORKERS=2       uvicorn workers for the peer; PEER_DIR=<repo>/../shared/peer; PEER_PORT=8100
#   SCENARIOS=all        or a space-separated subset of the scenario names (see README)
#   PORT=8181            where the Rust server listens (always 127.0.0.1)
#   PGPORT=5432 PGUSER=postgres (PGPASSWORD if the server wants one); the host is always 127.0.0.1
#   BENCH_DB=employee_bench  PGBENCH_DB=bench_pgbench  PEER_DB=peer_bench
#   WRITE_POOL=auto      rows loaded for PATCH/DELETE (auto: 3 x POST req/s x DURATION, 20k..300k)
#   SKIP_BUILD=0  BIN=<repo>/target/release/employee-api  SERVER_LOG=warn (RUST_LOG of the server)
#   DATA_DIR=bench/data (databases, logs; git-ignored)  RESULTS_DIR=bench/results
set -euo pipefail

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$BENCH_DIR/.." && pwd)"

N="${N:-1000000}"
DURATION="${DURATION:-10s}"
WARMUP="${WARMUP:-2s}"
CONNECTIONS="${CONNECTIONS:-32}"
THREADS="${THREADS:-2}"
AUTH_CONNECTIONS="${AUTH_CONNECTIONS:-4}"
BACKENDS="${BACKENDS:-sqlite postgres}"
PEER="${PEER:-0}"
PEER_WORKERS="${PEER_WORKERS:-2}"
PEER_DIR="${PEER_DIR:-$ROOT/../shared/peer}"
PEER_PORT="${PEER_PORT:-8100}"
SCENARIOS="${SCENARIOS:-all}"
PORT="${PORT:-8181}"
PGPORT="${PGPORT:-5432}"
PGUSER="${PGUSER:-postgres}"
BENCH_DB="${BENCH_DB:-employee_bench}"
PGBENCH_DB="${PGBENCH_DB:-bench_pgbench}"
PEER_DB="${PEER_DB:-peer_bench}"
WRITE_POOL="${WRITE_POOL:-auto}"
SKIP_BUILD="${SKIP_BUILD:-0}"
BIN="${BIN:-$ROOT/target/release/employee-api}"
SERVER_LOG="${SERVER_LOG:-warn}"
DATA_DIR="${DATA_DIR:-$BENCH_DIR/data}"
RESULTS_DIR="${RESULTS_DIR:-$BENCH_DIR/results}"

PGHOST=127.0.0.1
export PGHOST PGPORT PGUSER
unset PGDATABASE PGSERVICE PGHOSTADDR || true

ADMIN_USER="admin"
ADMIN_PASSWORD="${BENCH_ADMIN_PASSWORD:-bench-Correct-Horse-Battery-Staple-42}"
PEER_ADMIN_USER="admin"
PEER_ADMIN_PASSWORD=adminpassword
BASE="http://127.0.0.1:$PORT"
PEER_BASE="http://127.0.0.1:$PEER_PORT"

STAMP="$(date +%Y%m%d-%H%M%S)"
LOG_DIR="$DATA_DIR/logs/$STAMP"
TSV="$LOG_DIR/results.tsv"
META="$LOG_DIR/meta.txt"
SERVER_PID=""
PEER_PID=""
CHILD_PID=""

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
meta() { printf '%s\t%s\n' "$1" "$2" >>"$META"; }

# ------------------------------------------------------------------ cleanup: our servers only
stop_pid() {  # stop_pid PID NAME: TERM, wait up to 10 s, then KILL; only the PID we started
    local pid="$1" name="$2" _
    [ -n "$pid" ] || return 0
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "$name (pid $pid) ignored SIGTERM: SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}
cleanup() {
    local rc=$?
    stop_pid "$CHILD_PID" "wrk/pgbench"
    CHILD_PID=""
    stop_pid "$SERVER_PID" "employee-api"
    SERVER_PID=""
    stop_pid "$PEER_PID" "peer"
    PEER_PID=""
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ------------------------------------------------------------------ helpers
secs_of() {  # "10s" / "2m" / "10" -> seconds
    case "$1" in
        *ms) echo 1 ;;
        *s) echo "${1%s}" ;;
        *m) echo $(( ${1%m} * 60 )) ;;
        *h) echo $(( ${1%h} * 3600 )) ;;
        *) echo "$1" ;;
    esac
}
want() {  # want SCENARIO: is it selected by SCENARIOS?
    [ "$SCENARIOS" = all ] && return 0
    case " $SCENARIOS " in *" $1 "*) return 0 ;; esac
    return 1
}
pg_url() { echo "postgres://$PGUSER@127.0.0.1:$PGPORT/$1"; }
psql_q() {  # psql_q DB SQL -> unaligned, tuples only
    psql -X -v ON_ERROR_STOP=1 -Atq -d "$1" -c "$2"
}
sqlite_q() {  # sqlite_q FILE SQL
    python3 -c 'import sqlite3,sys; c=sqlite3.connect(sys.argv[1], timeout=60); print(c.execute(sys.argv[2]).fetchone()[0])' "$1" "$2"
}
vm_kb() {  # vm_kb PID FIELD (VmHWM/VmRSS) -> kB or 0
    awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0
}
tree_pids() {  # PID and all its descendants
    local p="$1" c
    echo "$p"
    # shellcheck disable=SC2013  # the children files hold space-separated PIDs
    for c in $(cat "/proc/$p/task/"*/children 2>/dev/null); do tree_pids "$c"; done
}
hwm_mb() {  # peak RSS (VmHWM) of a process tree, MB
    local total=0 p k
    for p in $(tree_pids "$1"); do
        k="$(vm_kb "$p" VmHWM)"
        total=$(( total + ${k:-0} ))
    done
    echo $(( (total + 512) / 1024 ))
}
cpu_ticks() {  # utime+stime of a process tree (clock ticks)
    local total=0 p t
    for p in $(tree_pids "$1"); do
        t="$(awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$p/stat" 2>/dev/null || echo 0)"
        total=$(( total + ${t:-0} ))
    done
    echo "$total"
}
# run_child CMD...: run a long command in the background and wait for it, so that an INT/TERM
# to this script is handled at once (bash runs traps only between foreground commands).
run_child() {
    local rc=0
    "$@" &
    CHILD_PID=$!
    wait "$CHILD_PID" || rc=$?
    CHILD_PID=""
    return "$rc"
}
wait_http() {  # wait_http URL PID SECONDS
    local url="$1" pid="$2" max="$3" _
    for _ in $(seq 1 $(( max * 5 ))); do
        if curl -fsS -o /dev/null --max-time 2 "$url" 2>/dev/null; then return 0; fi
        kill -0 "$pid" 2>/dev/null || return 1
        sleep 0.2
    done
    return 1
}
get_token() {  # get_token BASE USER PASSWORD -> access_token
    local body
    body="$(curl -sS --max-time 30 -X POST "$1/auth/token" \
        --data-urlencode "username=$2" --data-urlencode "password=$3")" || return 1
    python3 -c 'import json,sys; print(json.loads(sys.argv[1])["access_token"])' "$body" 2>/dev/null \
        || { log "login failed: $body"; return 1; }
}
http_status() {  # http_status URL TOKEN [HEADER]
    local extra=()
    [ -n "${3:-}" ] && extra=(-H "$3")
    curl -sS -o /dev/null -w '%{http_code}' --max-time 120 -H "Authorization: Bearer $2" "${extra[@]}" "$1" || echo 000
}
next_link() {  # next_link URL TOKEN -> the path+query of the Link rel="next" target, or nothing
    curl -sS -o /dev/null -D - --max-time 120 -H "Authorization: Bearer $2" -H "Prefer: count=none" "$1" \
        | tr -d '\r' | python3 -c '
import re, sys
for line in sys.stdin:
    if line.lower().startswith("link:"):
        for part in line.split(":", 1)[1].split(","):
            m = re.match(r"\s*<([^>]*)>(.*)", part)
            if m and re.search(r"""rel\s*=\s*"?([^";]*\s)?next[\s";]""", m.group(2) + ";"):
                target = re.sub(r"^[a-zA-Z][a-zA-Z0-9+.-]*://[^/]*", "", m.group(1))
                if not target.startswith("/"):  # relative reference: resolve against /employees/
                    target = "/employees/" + target
                print(target)
                sys.exit(0)
'
}

# record BACKEND SCENARIO CONNS RESULT_LINE RSS_MB CPU_US NOTE
record() {
    local backend="$1" scen="$2" conns="$3" line="$4" rss="$5" cpu="$6" note="$7" kv k v
    declare -A r=([rps]="" [p50_ms]="" [p90_ms]="" [p99_ms]="" [max_ms]="" [requests]="" [non2xx]=""
                  [socket_errors]="" [timeouts]="" [exhausted]="")
    for kv in $line; do
        k="${kv%%=*}"; v="${kv#*=}"
        [ "$k" = BENCH_RESULT ] && continue
        r[$k]="$v"
    done
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' \
        "$backend" "$scen" "$conns" "${r[rps]}" "${r[p50_ms]}" "${r[p90_ms]}" "${r[p99_ms]}" "${r[max_ms]}" \
        "${r[requests]}" "${r[non2xx]}" "${r[socket_errors]}" "${r[timeouts]}" "$rss" "$cpu" "$note" >>"$TSV"
}
skip() {  # skip BACKEND SCENARIO REASON
    log "$1/$2: SKIPPED: $3"
    printf '%s\t%s\t\t\t\t\t\t\t\t\t\t\t\t\t%s\n' "$1" "$2" "skipped: $3" >>"$TSV"
}

# run_wrk BACKEND SCENARIO PID CONNS SCRIPT WARMUP [VAR=value ...]
# Runs one scenario against the server whose PID is given (for RSS/CPU sampling).
LAST_RPS=""
LAST_REQUESTS=""
LAST_NON2XX=""
run_wrk() {
    local backend="$1" scen="$2" pid="$3" conns="$4" script="$5" warm="$6"
    shift 6
    local threads="$THREADS" url base out line t0 t1 cpu note=""
    [ "$conns" -lt "$threads" ] && threads="$conns"
    base="$BASE"
    [ "$backend" = peer ] && base="$PEER_BASE"
    url="$base"
    out="$LOG_DIR/wrk-$backend-$scen.txt"
    if [ "$warm" != 0 ] && [ "$warm" != 0s ]; then
        run_child env "$@" BENCH_THREADS="$threads" BENCH_N="$N" \
            wrk -t"$threads" -c"$conns" -d"$warm" --timeout 10s -s "$BENCH_DIR/lua/$script" "$url" \
            >"$out.warmup" 2>&1 || true
    fi
    t0="$(cpu_ticks "$pid")"
    if ! run_child env "$@" BENCH_THREADS="$threads" BENCH_N="$N" \
        wrk -t"$threads" -c"$conns" -d"$DURATION" --timeout 10s -s "$BENCH_DIR/lua/$script" "$url" >"$out" 2>&1; then
        skip "$backend" "$scen" "wrk failed (see $out)"
        return 0
    fi
    t1="$(cpu_ticks "$pid")"
    line="$(grep '^BENCH_RESULT ' "$out" | tail -n 1)"
    [ -n "$line" ] || { skip "$backend" "$scen" "no BENCH_RESULT line (see $out)"; return 0; }
    LAST_RPS="$(sed -n 's/.* rps=\([^ ]*\).*/\1/p' <<<"$line")"
    LAST_REQUESTS="$(sed -n 's/.* requests=\([^ ]*\).*/\1/p' <<<"$line")"
    LAST_NON2XX="$(sed -n 's/.* non2xx=\([^ ]*\).*/\1/p' <<<"$line")"
    local exhausted
    exhausted="$(sed -n 's/.* exhausted=\([^ ]*\).*/\1/p' <<<"$line")"
    [ "${exhausted:-0}" != 0 ] && note="id block exhausted by $exhausted thread(s): req/s is a lower bound"
    # server CPU per request, in microseconds (clock ticks -> us)
    cpu="$(awk -v d="$(( t1 - t0 ))" -v hz="$(getconf CLK_TCK)" -v n="$LAST_REQUESTS" \
        'BEGIN { if (n > 0) printf "%.0f", d * 1e6 / hz / n }')"
    record "$backend" "$scen" "$conns" "$line" "$(hwm_mb "$pid")" "$cpu" "$note"
    log "$backend/$scen: ${line#BENCH_RESULT }"
}

# read_url BACKEND SCENARIO PID TOKEN PATH [HEADER]: a GET scenario on one URL,
# checked once with curl first (must answer 200, else the scenario is skipped).
read_url() {
    local backend="$1" scen="$2" pid="$3" token="$4" path="$5" header="${6:-}" base="$BASE" code
    want "$scen" || return 0
    [ "$backend" = peer ] && base="$PEER_BASE"
    code="$(http_status "$base$path" "$token" "$header")"
    if [ "$code" != 200 ]; then
        skip "$backend" "$scen" "GET $path answered HTTP $code"
        return 0
    fi
    run_wrk "$backend" "$scen" "$pid" "$CONNECTIONS" urls.lua "$WARMUP" \
        BENCH_TOKEN="$token" BENCH_PATHS="$path" BENCH_HEADERS="$header"
}

# ------------------------------------------------------------------ 1. tools and PostgreSQL
ensure_tools() {
    local pkgs=()
    command -v wrk >/dev/null 2>&1 || pkgs+=(wrk)
    command -v curl >/dev/null 2>&1 || pkgs+=(curl)
    command -v python3 >/dev/null 2>&1 || pkgs+=(python3)
    command -v psql >/dev/null 2>&1 || pkgs+=(postgresql-client)
    # Debian's /usr/bin/pgbench is a wrapper: check that it finds a real pgbench
    pgbench --version >/dev/null 2>&1 || pkgs+=(postgresql-contrib)
    if ! pg_isready -h 127.0.0.1 -p "$PGPORT" -q 2>/dev/null && ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
        pkgs+=(postgresql postgresql-contrib)
    fi
    if [ "${#pkgs[@]}" -gt 0 ]; then
        [ "$(id -u)" = 0 ] || die "missing ${pkgs[*]}: run as root (or install them) first"
        log "installing: ${pkgs[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq "${pkgs[@]}" >/dev/null
    fi
    for t in wrk curl python3 psql createdb pg_isready; do
        command -v "$t" >/dev/null 2>&1 || die "$t still missing after install"
    done
    pgbench --version >/dev/null 2>&1 || die "pgbench still missing after install"
}

ensure_postgres() {
    if ! pg_isready -h 127.0.0.1 -p "$PGPORT" -q; then
        local ver
        ver="$(find /etc/postgresql -mindepth 1 -maxdepth 1 -type d -printf '%f\n' 2>/dev/null | sort -V | tail -n 1)"
        [ -n "$ver" ] || die "no PostgreSQL cluster in /etc/postgresql"
        log "starting PostgreSQL $ver/main"
        pg_ctlcluster --skip-systemctl-redirect "$ver" main start \
            || pg_ctlcluster "$ver" main start
        for _ in $(seq 1 30); do pg_isready -h 127.0.0.1 -p "$PGPORT" -q && break; sleep 1; done
        pg_isready -h 127.0.0.1 -p "$PGPORT" -q || die "PostgreSQL did not come up on 127.0.0.1:$PGPORT"
    fi
    psql_q postgres 'SELECT 1' >/dev/null \
        || die "cannot connect as $PGUSER to 127.0.0.1:$PGPORT (set PGUSER / PGPASSWORD)"
    local listen
    listen="$(psql_q postgres 'SHOW listen_addresses')"
    case "$listen" in
        localhost|127.0.0.1|'127.0.0.1,::1'|'localhost,127.0.0.1'|'') ;;
        *) log "WARNING: PostgreSQL listen_addresses = '$listen' (not loopback only); this suite only connects to 127.0.0.1" ;;
    esac
}

ensure_db() {  # ensure_db NAME
    if [ "$(psql_q postgres "SELECT 1 FROM pg_database WHERE datname = '$1'")" != 1 ]; then
        createdb -h 127.0.0.1 -p "$PGPORT" -U "$PGUSER" "$1"
    fi
}

# ------------------------------------------------------------------ 3. pgbench
PGBENCH_TPS=()
pgbench_prepare() {
    ensure_db "$PGBENCH_DB"
    local branches
    branches="$(psql_q "$PGBENCH_DB" "SELECT count(*) FROM pgbench_branches" 2>/dev/null || echo 0)"
    if [ "$branches" != 10 ]; then
        log "pgbench -i -s 10 into $PGBENCH_DB"
        pgbench -i -s 10 -q "$PGBENCH_DB" >"$LOG_DIR/pgbench-init.txt" 2>&1
    fi
}
pgbench_run() {  # pgbench_run LABEL
    local out="$LOG_DIR/pgbench-$1.txt" tps lat
    run_child pgbench -S -M prepared -c "$CONNECTIONS" -j "$THREADS" -T "$(secs_of "$DURATION")" "$PGBENCH_DB" >"$out" 2>&1 \
        || die "pgbench failed: $(tail -n 3 "$out")"
    tps="$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' "$out" | head -n 1)"
    lat="$(sed -n 's/^latency average = \([0-9.]*\) ms.*/\1/p' "$out" | head -n 1)"
    PGBENCH_TPS+=("$tps")
    meta "pgbench_$1" "$tps tps, latency average $lat ms"
    log "pgbench -S -M prepared -c $CONNECTIONS -j $THREADS ($1): $tps tps, latency average $lat ms"
}

# ------------------------------------------------------------------ 4. the Rust server
load_rows() {  # load_rows BACKEND TARGET (then LOAD_NOTE); exit code 3 = holds other data
    local out rc=0
    out="$(python3 "$BENCH_DIR/gen_data.py" load --backend "$1" --target "$2" --n "$N" "${@:3}" \
        2>>"$LOG_DIR/load.txt")" || rc=$?
    [ "$rc" = 0 ] || return "$rc"
    case "$out" in
        *LOAD_SKIPPED*) meta "load_$1" "already loaded (skipped)" ;;
        *LOAD_RATE*) meta "load_$1" "$(awk '/^LOAD_RATE/ { printf "%d rows in %.1f s = %d rows/s", $3, $4, $2 }' <<<"$out")" ;;
    esac
}

prepare_backend() {  # prepare_backend BACKEND -> DB_URL, DB_TARGET
    local backend="$1" rc=0
    case "$backend" in
        sqlite)
            DB_TARGET="$DATA_DIR/employees-$N.db"
            DB_URL="sqlite://$DB_TARGET"
            ;;
        postgres)
            ensure_db "$BENCH_DB"
            DB_TARGET="$(pg_url "$BENCH_DB")"
            DB_URL="$DB_TARGET"
            ;;
        *) die "unknown backend '$backend' (sqlite, postgres)" ;;
    esac
    (cd "$DATA_DIR" && DATABASE_URL="$DB_URL" "$BIN" migrate) >>"$LOG_DIR/server-$backend.log" 2>&1 \
        || die "$BIN migrate failed for $backend (see $LOG_DIR/server-$backend.log)"
    log "$backend: loading $N rows (if not already there)"
    load_rows "$backend" "$DB_TARGET" || rc=$?
    if [ "$rc" = 3 ]; then
        log "$backend: the database holds other data: recreating it"
        if [ "$backend" = sqlite ]; then
            rm -f "$DB_TARGET" "$DB_TARGET-wal" "$DB_TARGET-shm"
        else
            dropdb -h 127.0.0.1 -p "$PGPORT" -U "$PGUSER" "$BENCH_DB"
            createdb -h 127.0.0.1 -p "$PGPORT" -U "$PGUSER" "$BENCH_DB"
        fi
        (cd "$DATA_DIR" && DATABASE_URL="$DB_URL" "$BIN" migrate) >>"$LOG_DIR/server-$backend.log" 2>&1 \
            || die "$BIN migrate failed for $backend"
        rc=0
        load_rows "$backend" "$DB_TARGET" || rc=$?
    fi
    [ "$rc" = 0 ] || die "loading $backend failed (see $LOG_DIR/load.txt)"
}

start_server() {  # start_server BACKEND
    if curl -s -o /dev/null --max-time 1 "$BASE/" 2>/dev/null; then
        die "something already listens on 127.0.0.1:$PORT (set PORT=)"
    fi
    (
        cd "$DATA_DIR"
        exec env DATABASE_URL="$DB_URL" BIND_ADDR="127.0.0.1:$PORT" JWT_SECRET_KEY="$JWT_SECRET" \
            ADMIN_USERNAME="$ADMIN_USER" ADMIN_PASSWORD="$ADMIN_PASSWORD" RATE_LIMIT_PER_MINUTE=0 \
            ACCESS_TOKEN_EXPIRE_MINUTES=240 RUST_LOG="$SERVER_LOG" "$BIN" serve
    ) >>"$LOG_DIR/server-$1.log" 2>&1 &
    SERVER_PID=$!
    wait_http "$BASE/healthz" "$SERVER_PID" 120 \
        || die "employee-api ($1) did not become healthy; log: $(tail -n 5 "$LOG_DIR/server-$1.log")"
    log "$1: employee-api up (pid $SERVER_PID)"
}

db_count() {  # db_count BACKEND WHERE
    if [ "$1" = sqlite ]; then
        sqlite_q "$DB_TARGET" "SELECT count(*) FROM employees WHERE $2"
    else
        psql_q "$BENCH_DB" "SELECT count(*) FROM employees WHERE $2"
    fi
}

# The read scenarios shared with the peer.
common_reads() {  # common_reads BACKEND PID TOKEN
    local b="$1" pid="$2" tok="$3"
    if want get_by_id; then
        local code
        code="$(http_status "$( [ "$b" = peer ] && echo "$PEER_BASE" || echo "$BASE")/employees/1" "$tok")"
        if [ "$code" = 200 ]; then
            run_wrk "$b" get_by_id "$pid" "$CONNECTIONS" get_by_id.lua "$WARMUP" BENCH_TOKEN="$tok"
        else
            skip "$b" get_by_id "GET /employees/1 answered HTTP $code"
        fi
    fi
    read_url "$b" list_default "$pid" "$tok" "/employees/"
    read_url "$b" filter_city_common "$pid" "$tok" "/employees/?city=london"
    read_url "$b" filter_city_rare "$pid" "$tok" "/employees/?city=qqortoormiit"
}

run_backend() {  # run_backend sqlite|postgres
    local b="$1" tok path deep secs pool post_base lo hi before after created
    prepare_backend "$b"
    start_server "$b"
    tok="$(get_token "$BASE" "$ADMIN_USER" "$ADMIN_PASSWORD")" \
        || die "$b: cannot log in as $ADMIN_USER (an older admin password in $DB_URL? delete that database)"

    # --- reads
    common_reads "$b" "$SERVER_PID" "$tok"
    read_url "$b" list_default_count_none "$SERVER_PID" "$tok" "/employees/" "Prefer: count=none"
    read_url "$b" sort_emp_name_asc "$SERVER_PID" "$tok" "/employees/?sort_by=emp_name&order=asc"
    read_url "$b" sort_emp_dob_asc "$SERVER_PID" "$tok" "/employees/?sort_by=emp_dob&order=asc"
    read_url "$b" sort_city_asc "$SERVER_PID" "$tok" "/employees/?sort_by=city&order=asc"
    read_url "$b" sort_country_asc "$SERVER_PID" "$tok" "/employees/?sort_by=country&order=asc"
    read_url "$b" sort_emp_id_desc "$SERVER_PID" "$tok" "/employees/?sort_by=emp_id&order=desc"
    read_url "$b" sort_emp_name_desc "$SERVER_PID" "$tok" "/employees/?sort_by=emp_name&order=desc"
    read_url "$b" filter_city_common_count_none "$SERVER_PID" "$tok" "/employees/?city=london" "Prefer: count=none"
    read_url "$b" deep_offset "$SERVER_PID" "$tok" "/employees/?offset=$(( N - 100 ))&limit=100"
    deep=$(( N * 9 / 10 - 100 ))
    for sort in emp_id emp_name; do
        local scen=deep_cursor
        [ "$sort" = emp_id ] || scen="deep_cursor_$sort"
        want "$scen" || continue
        path="$(next_link "$BASE/employees/?sort_by=$sort&offset=$deep&limit=100" "$tok" || true)"
        if [ -z "$path" ]; then
            skip "$b" "$scen" "no Link rel=\"next\" on GET /employees/?sort_by=$sort&offset=$deep"
        else
            printf '%s\t%s\n' "$b/$scen" "$path" >>"$LOG_DIR/cursors.txt"
            read_url "$b" "$scen" "$SERVER_PID" "$tok" "$path"
        fi
    done

    # --- writes: POST new ids; PATCH and DELETE a block loaded for them (the base set 1..N
    # is never changed, so every run reads the same data)
    secs="$(secs_of "$DURATION")"
    post_base=$(( N + 50000001 ))
    local post_rps=""
    if want post; then
        before="$(db_count "$b" "emp_id >= $post_base")"
        run_wrk "$b" post "$SERVER_PID" "$CONNECTIONS" post.lua 0 \
            BENCH_TOKEN="$tok" BENCH_ID_BASE="$post_base" BENCH_ID_STRIDE=10000000
        post_rps="$LAST_RPS"
        after="$(db_count "$b" "emp_id >= $post_base")"
        created=$(( after - before ))
        meta "check_post_$b" "wrk counted $LAST_REQUESTS requests ($LAST_NON2XX >= 400); $created rows created"
    fi
    if want patch || want delete; then
        if [ "$WRITE_POOL" = auto ]; then
            pool="$(awk -v r="${post_rps:-0}" -v s="$secs" 'BEGIN { p = int(3 * r * s); if (p < 20000) p = 20000; if (p > 300000) p = 300000; print p }')"
        else
            pool="$WRITE_POOL"
        fi
        lo=$(( N + 1 ))
        hi=$(( N + pool ))
        log "$b: loading the write block $lo..$hi"
        python3 "$BENCH_DIR/gen_data.py" load --backend "$b" --target "$DB_TARGET" --n "$N" \
            --start "$lo" --count "$pool" >/dev/null 2>>"$LOG_DIR/load.txt" \
            || die "loading the write block failed (see $LOG_DIR/load.txt)"
        if want patch; then
            run_wrk "$b" patch "$SERVER_PID" "$CONNECTIONS" patch.lua 0 \
                BENCH_TOKEN="$tok" BENCH_ID_LO="$lo" BENCH_ID_HI="$hi"
        fi
        if want delete; then
            before="$(db_count "$b" "emp_id BETWEEN $lo AND $hi")"
            run_wrk "$b" delete "$SERVER_PID" "$CONNECTIONS" delete.lua 0 \
                BENCH_TOKEN="$tok" BENCH_ID_LO="$lo" BENCH_ID_HI="$hi"
            after="$(db_count "$b" "emp_id BETWEEN $lo AND $hi")"
            meta "check_delete_$b" "wrk counted $LAST_REQUESTS requests ($LAST_NON2XX >= 400); $(( before - after )) rows deleted of $pool"
        fi
    fi
    if want auth_token; then
        run_wrk "$b" auth_token "$SERVER_PID" "$AUTH_CONNECTIONS" auth_token.lua 0 \
            BENCH_TOKEN= BENCH_USERNAME="$ADMIN_USER" BENCH_PASSWORD="$ADMIN_PASSWORD"
    fi

    meta "peak_rss_$b" "$(hwm_mb "$SERVER_PID") MB (VmHWM of employee-api at the end of the $b run)"
    log "$b: peak RSS $(hwm_mb "$SERVER_PID") MB"
    stop_pid "$SERVER_PID" employee-api
    SERVER_PID=""
}

# ------------------------------------------------------------------ 5. the peer
run_peer() {
    [ -x "$PEER_DIR/run.sh" ] || die "PEER=1 but no $PEER_DIR/run.sh"
    [ "$(id -u)" = 0 ] || die "PEER=1 needs root (the peer's setup.sh)"
    log "peer: setup.sh"
    "$PEER_DIR/setup.sh" >"$LOG_DIR/peer-setup.txt" 2>&1 || die "peer setup failed (see $LOG_DIR/peer-setup.txt)"
    ensure_db "$PEER_DB"
    psql_q "$PEER_DB" "GRANT ALL PRIVILEGES ON DATABASE $PEER_DB TO peer; GRANT ALL ON SCHEMA public TO peer" >/dev/null
    if curl -s -o /dev/null --max-time 1 "$PEER_BASE/" 2>/dev/null; then
        die "something already listens on 127.0.0.1:$PEER_PORT (set PEER_PORT=)"
    fi
    PORT="$PEER_PORT" WORKERS="$PEER_WORKERS" ACCESS_LOG=0 SQL_ECHO=0 \
        DATABASE_URL="postgresql+asyncpg://peer:peer@127.0.0.1:$PGPORT/$PEER_DB" \
        "$PEER_DIR/run.sh" >"$LOG_DIR/peer.log" 2>&1 &
    PEER_PID=$!
    wait_http "$PEER_BASE/" "$PEER_PID" 120 || die "the peer did not come up; log: $(tail -n 5 "$LOG_DIR/peer.log")"
    log "peer: up (pid $PEER_PID, $PEER_WORKERS workers); loading $N rows into $PEER_DB.employee"
    load_rows peer "$(pg_url "$PEER_DB")" --truncate || die "loading the peer's rows failed (see $LOG_DIR/load.txt)"
    local tok
    tok="$(get_token "$PEER_BASE" "$PEER_ADMIN_USER" "$PEER_ADMIN_PASSWORD")" || die "cannot log in to the peer"
    common_reads peer "$PEER_PID" "$tok"
    meta "peak_rss_peer" "$(hwm_mb "$PEER_PID") MB (sum of VmHWM over uvicorn and its workers)"
    stop_pid "$PEER_PID" peer
    PEER_PID=""
}

# ------------------------------------------------------------------ main
main() {
    mkdir -p "$DATA_DIR" "$LOG_DIR" "$RESULTS_DIR"
    : >"$TSV"
    : >"$META"
    case "$N" in ''|*[!0-9]*) die "N must be a positive integer" ;; esac
    [ "$N" -ge 1000 ] || die "N must be at least 1000"
    log "logs in $LOG_DIR"
    ensure_tools
    ensure_postgres

    if [ "$SKIP_BUILD" != 1 ]; then
        command -v cargo >/dev/null 2>&1 || die "cargo not found (or set SKIP_BUILD=1 BIN=...)"
        log "cargo build --release"
        (cd "$ROOT" && cargo build --release) || die "cargo build --release failed"
    fi
    [ -x "$BIN" ] || die "no server binary at $BIN"
    JWT_SECRET="$(python3 -c 'import secrets; print(secrets.token_hex(32))')"

    meta date "$(date -u +%FT%TZ)"
    meta commit "$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo none)$(git -C "$ROOT" diff --quiet HEAD 2>/dev/null || echo ' (+ uncommitted changes)')"
    meta cpu "$(nproc) x $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
    meta memory "$(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)"
    meta kernel "$(uname -r)"
    meta postgres "$(psql_q postgres 'SHOW server_version'), shared_buffers $(psql_q postgres 'SHOW shared_buffers')"
    meta wrk "$(wrk -v 2>&1 | head -n 1 | awk '{ print $1, $2 }')"
    meta params "N=$N DURATION=$DURATION WARMUP=$WARMUP CONNECTIONS=$CONNECTIONS THREADS=$THREADS AUTH_CONNECTIONS=$AUTH_CONNECTIONS"
    meta load_avg_start "$(cut -d' ' -f1-3 /proc/loadavg)"

    pgbench_prepare
    pgbench_run before
    for b in $BACKENDS; do
        run_backend "$b"
    done
    if [ "$PEER" = 1 ]; then
        run_peer
    fi
    pgbench_run after
    meta load_avg_end "$(cut -d' ' -f1-3 /proc/loadavg)"

    local report
    report="$RESULTS_DIR/$(date +%F).md"
    python3 "$BENCH_DIR/report.py" --tsv "$TSV" --meta "$META" --pgbench "${PGBENCH_TPS[@]}" >"$report.tmp"
    mv "$report.tmp" "$report"
    cat "$report"
    log "written to $report (raw: $LOG_DIR)"
}

main "$@"
