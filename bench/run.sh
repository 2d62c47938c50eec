#!/usr/bin/env bash
# bench/run.sh: the employee-api benchmark suite, one command (from anywhere; run as root on
# a fresh machine so that it can install what is missing):
#
#     bench/run.sh
#     N=100000 DURATION=5s bench/run.sh                  # quicker
#     BACKENDS=postgres PEER=1 bench/run.sh              # PostgreSQL, side by side with the original
#     SKIP_BUILD=1 SCENARIOS="get_by_id list_default" BACKENDS=sqlite bench/run.sh
#
# This script only provisions:
#   1. installs what is missing (wrk, PostgreSQL server + client with pgbench, curl, python3)
#      with apt-get, and starts the local PostgreSQL cluster if it is down;
#   2. cargo build --release (SKIP_BUILD=1 skips it; BIN= picks another binary);
#   3. PEER=1: the original service's own setup.sh (its venv, its PostgreSQL role);
# then hands over to bench/bench.py, which does the rest: the databases, the data (generated
# by bench/gen_data.py, loaded by `employee-api employees import`), the servers, wrk and
# pgbench, and the report in bench/results/<date>.md. Details in bench/README.md.
#
# Environment (all optional; bench.py reads them):
#   N=1000000            rows in the dataset (SEED= picks another dataset of the same shape)
#   DURATION=10s         per scenario (wrk -d; also pgbench -T); WARMUP=2s before each read scenario (0 = none)
#   CONNECTIONS=32       concurrent connections (wrk -c, pgbench -c); THREADS=2 (wrk -t, pgbench -j)
#   AUTH_CONNECTIONS=4   for POST /auth/token (Argon2-bound)
#   BACKENDS="sqlite postgres"
#   PEER=0               1 = also run the original FastAPI service (needs root, PyPI for its venv)
#   PEER_WORKERS=2       uvicorn workers for the peer; PEER_DIR=<repo>/../shared/peer; PEER_PORT=8100
#   SCENARIOS=all        or a space-separated subset of the scenario names (see README)
#   PORT=8181            where the Rust server listens (always 127.0.0.1)
#   PGPORT=5432 PGUSER=postgres (PGPASSWORD if the server wants one); the host is always 127.0.0.1
#   BENCH_DB=employee_bench (and BENCH_DB_base, the imported dataset)  PGBENCH_DB=bench_pgbench  PEER_DB=peer_bench
#   WRITE_POOL=auto      rows imported for PATCH/DELETE (auto: 3 x POST req/s x DURATION, 20k..300k)
#   RELOAD=0             1 = import the dataset again even when the kept one matches
#   SKIP_BUILD=0  BIN=<cargo target dir>/release/employee-api  SERVER_LOG=warn (RUST_LOG of the server)
#   DATA_DIR=bench/data (databases, logs; git-ignored)  RESULTS_DIR=bench/results
set -euo pipefail

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$BENCH_DIR/.." && pwd)"

PGPORT="${PGPORT:-5432}"
SKIP_BUILD="${SKIP_BUILD:-0}"
PEER="${PEER:-0}"
PEER_DIR="${PEER_DIR:-$ROOT/../shared/peer}"
DATA_DIR="${DATA_DIR:-$BENCH_DIR/data}"
BIN="${BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/employee-api}"
export BIN PEER_DIR DATA_DIR

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# ------------------------------------------------------------------ 1. tools and PostgreSQL
ensure_tools() {
    local pkgs=() t
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
    for t in wrk curl python3 psql pg_isready; do
        command -v "$t" >/dev/null 2>&1 || die "$t still missing after install"
    done
    pgbench --version >/dev/null 2>&1 || die "pgbench still missing after install"
}

ensure_postgres() {
    local ver _
    pg_isready -h 127.0.0.1 -p "$PGPORT" -q && return 0
    # the newest installed version's "main" cluster
    ver="$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1)"
    [ -n "$ver" ] || die "no PostgreSQL cluster in /etc/postgresql"
    log "starting PostgreSQL $ver/main"
    pg_ctlcluster --skip-systemctl-redirect "$ver" main start || pg_ctlcluster "$ver" main start
    for _ in $(seq 1 30); do
        pg_isready -h 127.0.0.1 -p "$PGPORT" -q && return 0
        sleep 1
    done
    die "PostgreSQL did not come up on 127.0.0.1:$PGPORT"
}

ensure_tools
ensure_postgres

# ------------------------------------------------------------------ 2. the server binary
if [ "$SKIP_BUILD" != 1 ]; then
    command -v cargo >/dev/null 2>&1 || die "cargo not found (or set SKIP_BUILD=1 BIN=...)"
    log "cargo build --release"
    (cd "$ROOT" && cargo build --release) || die "cargo build --release failed"
fi
[ -x "$BIN" ] || die "no server binary at $BIN"

# ------------------------------------------------------------------ 3. the original service
if [ "$PEER" = 1 ]; then
    [ -x "$PEER_DIR/setup.sh" ] || die "PEER=1 but no $PEER_DIR/setup.sh"
    [ "$(id -u)" = 0 ] || die "PEER=1 needs root (the peer's setup.sh)"
    mkdir -p "$DATA_DIR"
    log "peer: $PEER_DIR/setup.sh (output in $DATA_DIR/peer-setup.log)"
    "$PEER_DIR/setup.sh" >"$DATA_DIR/peer-setup.log" 2>&1 || die "peer setup failed (see $DATA_DIR/peer-setup.log)"
fi

# ------------------------------------------------------------------ everything else
exec python3 "$BENCH_DIR/bench.py"
