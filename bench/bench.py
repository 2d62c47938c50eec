#!/usr/bin/env python3
"""bench/bench.py: the orchestration of the employee-api benchmark suite (stdlib only).

bench/run.sh installs and starts what is missing, builds the release binary and then hands
over to this program, which owns everything else:

  1. pgbench -i -s 10 into its own database, pgbench -S -M prepared at the same concurrency
     (before and after the API scenarios; the mean is the reference for the ratios);
  2. per backend: the dataset of N generated rows (gen_data.py) loaded by the product itself,
     `employee-api employees import`, into a *base* database that is kept between runs (a
     SQLite file beside a JSON marker, a PostgreSQL database whose comment is the marker);
     each run works on a fresh copy of it (a file copy; CREATE DATABASE ... TEMPLATE), so
     the rows left by the write scenarios never reach the next run. Then `employee-api
     serve` on 127.0.0.1, a login, and every scenario with wrk (bench/lua/*.lua), sampling
     the server's peak RSS (VmHWM) and CPU;
  3. PEER=1: the original FastAPI service (../shared/peer), its rows COPYed into its own
     table in its own database, read scenarios only;
  4. the markdown report (report.py) to stdout and bench/results/<date>.md; raw output under
     bench/data/logs/<time>/.

The options are environment variables, documented in bench/README.md and at the top of
run.sh. Every process this program starts is stopped on exit, Ctrl-C, SIGTERM or SIGHUP.
It only ever talks to 127.0.0.1.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import secrets
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
sys.path.insert(0, str(BENCH_DIR))
sys.dont_write_bytecode = True  # no __pycache__ in the source tree

import gen_data  # noqa: E402
import report  # noqa: E402

SCENARIOS_ALL = report.SCENARIO_ORDER
ADMIN_USER = "admin"
PEER_ADMIN_USER = "admin"
PEER_ADMIN_PASSWORD = "adminpassword"  # the original's hard-coded admin
PEER_COLUMNS = gen_data.PEER_COLUMNS
POST_ID_OFFSET = 50_000_001  # POST creates emp_ids from N + this up
POST_ID_STRIDE = 10_000_000  # ... a disjoint range per wrk thread


class Fatal(Exception):
    """A failure that ends the run (logged as ERROR, exit code 1)."""


class Interrupted(Exception):
    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.code = 128 + signum


def env(name: str, default: str) -> str:
    v = os.environ.get(name, "")
    return v if v != "" else default


def secs_of(d: str) -> int:
    """"10s" / "2m" / "1h" / "10" -> whole seconds (at least 1 for "500ms")."""
    d = d.strip()
    if d.endswith("ms"):
        return 1
    for suffix, mult in (("s", 1), ("m", 60), ("h", 3600)):
        if d.endswith(suffix):
            return int(d[: -len(suffix)]) * mult
    return int(d)


def ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


# ------------------------------------------------------------------ /proc sampling

def tree_pids(pid: int):
    """pid and all its descendants (that still exist)."""
    out = [pid]
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for t in tasks:
        try:
            with open(f"/proc/{pid}/task/{t}/children") as f:
                for c in f.read().split():
                    out += tree_pids(int(c))
        except OSError:
            pass
    return out


def hwm_mb(pid: int) -> int:
    """Peak RSS (VmHWM) of a process tree, MB."""
    total = 0
    for p in tree_pids(pid):
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return (total + 512) // 1024


def cpu_ticks(pid: int) -> int:
    """utime + stime of a process tree, clock ticks."""
    total = 0
    for p in tree_pids(pid):
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(") ", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            pass
    return total


# ------------------------------------------------------------------ HTTP (loopback only)

HTTP = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http(method: str, url: str, token: str = "", headers=None, data: bytes | None = None, timeout: float = 120):
    """(status, headers, body); status 0 when there was no HTTP answer at all."""
    req = urllib.request.Request(url, data=data, method=method)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with HTTP.open(req, timeout=timeout) as resp:
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()
    except (urllib.error.URLError, OSError):
        return 0, None, b""


def header_arg(h: str):
    """"Name: value" -> {Name: value}; "" -> {}."""
    if not h:
        return {}
    name, _, value = h.partition(":")
    return {name.strip(): value.strip()}


def next_link(url: str, token: str):
    """The path+query of the Link rel="next" target of a GET, or None."""
    status, headers, _ = http("GET", url, token, {"Prefer": "count=none"})
    if status != 200 or headers is None:
        return None
    for line in headers.get_all("Link") or []:
        for part in line.split(","):
            m = re.match(r"\s*<([^>]*)>(.*)", part)
            if m and re.search(r"""rel\s*=\s*"?([^";]*\s)?next[\s";]""", m.group(2) + ";"):
                target = re.sub(r"^[a-zA-Z][a-zA-Z0-9+.-]*://[^/]*", "", m.group(1))
                if not target.startswith("/"):  # relative reference: resolve against /employees/
                    target = "/employees/" + target
                return target
    return None


def port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


# ------------------------------------------------------------------ the run

class Bench:
    def __init__(self):
        self.n = int(env("N", "1000000")) if env("N", "1000000").isdigit() else -1
        self.seed = int(env("SEED", str(gen_data.DEFAULT_SEED)))
        self.duration = env("DURATION", "10s")
        self.warmup = env("WARMUP", "2s")
        self.connections = int(env("CONNECTIONS", "32"))
        self.threads = int(env("THREADS", "2"))
        self.auth_connections = int(env("AUTH_CONNECTIONS", "4"))
        self.backends = env("BACKENDS", "sqlite postgres").split()
        self.peer = env("PEER", "0") == "1"
        self.peer_workers = env("PEER_WORKERS", "2")
        self.peer_dir = Path(env("PEER_DIR", str(ROOT / ".." / "shared" / "peer")))
        self.peer_port = int(env("PEER_PORT", "8100"))
        self.scenarios = env("SCENARIOS", "all").split()
        self.port = int(env("PORT", "8181"))
        self.pgport = env("PGPORT", "5432")
        self.pguser = env("PGUSER", "postgres")
        self.bench_db = env("BENCH_DB", "employee_bench")
        self.base_db = f"{self.bench_db}_base"
        self.pgbench_db = env("PGBENCH_DB", "bench_pgbench")
        self.peer_db = env("PEER_DB", "peer_bench")
        self.write_pool = env("WRITE_POOL", "auto")
        self.reload = env("RELOAD", "0") == "1"
        self.bin = Path(env("BIN", str(Path(env("CARGO_TARGET_DIR", str(ROOT / "target"))) / "release" / "employee-api")))
        self.server_log = env("SERVER_LOG", "warn")
        self.data_dir = Path(env("DATA_DIR", str(BENCH_DIR / "data"))).resolve()
        self.results_dir = Path(env("RESULTS_DIR", str(BENCH_DIR / "results"))).resolve()
        self.admin_password = env("BENCH_ADMIN_PASSWORD", "bench-Correct-Horse-Battery-Staple-42")
        self.base = f"http://127.0.0.1:{self.port}"
        self.peer_base = f"http://127.0.0.1:{self.peer_port}"
        self.jwt_secret = secrets.token_hex(32)

        self.log_dir = self.data_dir / "logs" / time.strftime("%Y%m%d-%H%M%S")
        self.tsv = self.log_dir / "results.tsv"
        self.meta_path = self.log_dir / "meta.txt"
        self.server = None  # Popen of employee-api serve
        self.peer_proc = None  # Popen of the peer's run.sh (uvicorn)
        self.child = None  # Popen of wrk / pgbench / psql / an import
        self.temp_files = []
        self.pgbench_tps = []
        self.last = {}
        # per backend, set by prepare_*: where the working copy is
        self.db_url = ""
        self.sqlite_path = None

        os.environ["PGHOST"] = "127.0.0.1"
        os.environ["PGPORT"] = self.pgport
        os.environ["PGUSER"] = self.pguser
        for k in ("PGDATABASE", "PGSERVICE", "PGHOSTADDR"):
            os.environ.pop(k, None)

    # -------------------------------------------------------------- logging and records
    def log(self, msg: str) -> None:
        line = f"[bench {time.strftime('%H:%M:%S')}] {msg}"
        print(line, file=sys.stderr, flush=True)
        try:
            with open(self.log_dir / "bench.log", "a", encoding="utf-8") as f:
                f.write(line + "\n")
        except OSError:
            pass

    def meta(self, key: str, value: str) -> None:
        with open(self.meta_path, "a", encoding="utf-8") as f:
            f.write(f"{key}\t{value}\n")

    def record(self, backend, scen, conns, r: dict, rss, cpu, note) -> None:
        cols = [backend, scen, str(conns)] + [r.get(k, "") for k in (
            "rps", "p50_ms", "p90_ms", "p99_ms", "max_ms", "requests", "non2xx", "socket_errors", "timeouts")]
        cols += [str(rss), cpu, note]
        with open(self.tsv, "a", encoding="utf-8") as f:
            f.write("\t".join(cols) + "\n")

    def skip(self, backend, scen, reason) -> None:
        self.log(f"{backend}/{scen}: SKIPPED: {reason}")
        with open(self.tsv, "a", encoding="utf-8") as f:
            f.write("\t".join([backend, scen] + [""] * 12 + [f"skipped: {reason}"]) + "\n")

    def want(self, scen: str) -> bool:
        return self.scenarios == ["all"] or scen in self.scenarios

    # -------------------------------------------------------------- processes
    def run_child(self, cmd, out_path=None, env_extra=None, cwd=None, stdin=None) -> int:
        """Run a command to completion as the tracked child (stopped on interrupt); stdout and
        stderr go to out_path (appended) or are discarded."""
        e = dict(os.environ, **(env_extra or {}))
        out = open(out_path, "a", encoding="utf-8") if out_path else subprocess.DEVNULL
        try:
            self.child = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=e, cwd=cwd, stdin=stdin)
            return self.child.wait()
        finally:
            self.reap_child()
            if out_path:
                out.close()

    def reap_child(self) -> None:
        """After the child's wait: stop it if we got here by an interrupt (a SIGTERM to this
        program alone does not reach it), and forget it."""
        if self.child is not None and self.child.poll() is None:
            self.stop(self.child, "child")
        self.child = None

    def stop(self, proc, name: str, group: bool = False) -> None:
        """TERM, up to 10 s, then KILL: only the process we started (and, with group=True, the
        process group it leads, which we created with start_new_session)."""
        if proc is None:
            return
        if proc.poll() is None:
            try:
                proc.terminate()
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.log(f"{name} (pid {proc.pid}) ignored SIGTERM: SIGKILL")
                try:
                    os.killpg(proc.pid, signal.SIGKILL) if group else proc.kill()
                except ProcessLookupError:
                    pass
                proc.wait()
        if group:  # workers left behind by their parent
            for sig in (signal.SIGTERM, signal.SIGKILL):
                try:
                    os.killpg(proc.pid, sig)
                except ProcessLookupError:
                    break
                time.sleep(1)

    def cleanup(self) -> None:
        self.stop(self.child, "child")
        self.child = None
        self.stop(self.server, "employee-api")
        self.server = None
        self.stop(self.peer_proc, "peer", group=True)
        self.peer_proc = None
        for p in self.temp_files:
            for q in (p, Path(f"{p}.tmp")):
                try:
                    q.unlink()
                except FileNotFoundError:
                    pass

    def wait_http(self, url: str, proc, max_s: int) -> bool:
        deadline = time.monotonic() + max_s
        while time.monotonic() < deadline:
            status, _, _ = http("GET", url, timeout=2)
            if 200 <= status < 400:
                return True
            if proc.poll() is not None:
                return False
            time.sleep(0.2)
        return False

    def product(self, args, db_url: str, out_name: str) -> tuple[int, str]:
        """Run `employee-api ARGS` with DATABASE_URL (in bench/data, so no .env of the repo
        leaks in); returns (exit code, its output), which is also appended to LOG_DIR/out_name."""
        out_path = self.log_dir / out_name
        start = out_path.stat().st_size if out_path.exists() else 0
        with open(out_path, "a", encoding="utf-8") as f:
            f.write(f"$ employee-api {' '.join(args)}\n")
        rc = self.run_child([str(self.bin)] + list(args), out_path,
                            {"DATABASE_URL": db_url, "RUST_LOG": self.server_log}, cwd=self.data_dir)
        with open(out_path, encoding="utf-8", errors="replace") as f:
            f.seek(start)
            text = f.read()
        return rc, text

    # -------------------------------------------------------------- PostgreSQL
    def pg_url(self, db: str) -> str:
        pw = os.environ.get("PGPASSWORD", "")
        auth = urllib.parse.quote(self.pguser, safe="")
        if pw:
            auth += ":" + urllib.parse.quote(pw, safe="")
        return f"postgres://{auth}@127.0.0.1:{self.pgport}/{urllib.parse.quote(db, safe='')}"

    def psql(self, db: str, sql: str, check: bool = True) -> str:
        p = subprocess.run(["psql", "-X", "-v", "ON_ERROR_STOP=1", "-Atq", "-F", "\t", "-d", db, "-c", sql],
                           capture_output=True, text=True)
        if check and p.returncode != 0:
            raise Fatal(f"psql {db}: {sql[:80]}: {p.stderr.strip()}")
        return p.stdout.strip()

    def db_exists(self, db: str) -> bool:
        return self.psql("postgres", f"SELECT 1 FROM pg_database WHERE datname = {literal(db)}") == "1"

    def ensure_db(self, db: str) -> None:
        if not self.db_exists(db):
            self.psql("postgres", f"CREATE DATABASE {ident(db)}")

    def check_postgres(self) -> None:
        if subprocess.run(["pg_isready", "-h", "127.0.0.1", "-p", self.pgport, "-q"]).returncode != 0:
            raise Fatal(f"PostgreSQL is not up on 127.0.0.1:{self.pgport} (bench/run.sh starts it)")
        if subprocess.run(["psql", "-X", "-Atq", "-d", "postgres", "-c", "SELECT 1"],
                          capture_output=True).returncode != 0:
            raise Fatal(f"cannot connect as {self.pguser} to 127.0.0.1:{self.pgport} (set PGUSER / PGPASSWORD)")
        listen = self.psql("postgres", "SHOW listen_addresses")
        if listen not in ("localhost", "127.0.0.1", "127.0.0.1,::1", "localhost,127.0.0.1", ""):
            self.log(f"WARNING: PostgreSQL listen_addresses = '{listen}' (not loopback only); "
                     "this suite only connects to 127.0.0.1")

    # -------------------------------------------------------------- pgbench
    def pgbench_prepare(self) -> None:
        self.ensure_db(self.pgbench_db)
        if self.psql(self.pgbench_db, "SELECT count(*) FROM pgbench_branches", check=False) != "10":
            self.log(f"pgbench -i -s 10 into {self.pgbench_db}")
            if self.run_child(["pgbench", "-i", "-s", "10", "-q", self.pgbench_db],
                              self.log_dir / "pgbench-init.txt") != 0:
                raise Fatal(f"pgbench -i failed (see {self.log_dir / 'pgbench-init.txt'})")

    def pgbench_run(self, label: str) -> None:
        out = self.log_dir / f"pgbench-{label}.txt"
        rc = self.run_child(["pgbench", "-S", "-M", "prepared", "-c", str(self.connections), "-j", str(self.threads),
                             "-T", str(secs_of(self.duration)), self.pgbench_db], out)
        text = out.read_text(errors="replace")
        if rc != 0:
            raise Fatal(f"pgbench failed: {text.strip().splitlines()[-3:]}")
        tps = re.search(r"^tps = ([0-9.]+)", text, re.M)
        lat = re.search(r"^latency average = ([0-9.]+) ms", text, re.M)
        tps_s, lat_s = (tps.group(1) if tps else ""), (lat.group(1) if lat else "")
        self.pgbench_tps.append(tps_s)
        self.meta(f"pgbench_{label}", f"{tps_s} tps, latency average {lat_s} ms")
        self.log(f"pgbench -S -M prepared -c {self.connections} -j {self.threads} ({label}): "
                 f"{tps_s} tps, latency average {lat_s} ms")

    # -------------------------------------------------------------- the dataset
    def dataset_csv(self) -> Path:
        """The base set 1..N in the import format, generated once per run (and removed at
        the end of it)."""
        path = self.data_dir / f"dataset-{self.n}-{self.seed}.csv"
        if path not in self.temp_files:
            self.temp_files.append(path)
            t0 = time.monotonic()
            gen_data.write_csv_file(str(path), 1, self.n, self.seed)
            self.log(f"generated {path.name} ({self.n:,} rows, {path.stat().st_size / 1e6:.0f} MB) "
                     f"in {time.monotonic() - t0:.1f} s")
        return path

    def expected_marker(self) -> dict:
        return {"n": self.n, "seed": self.seed, "dataset_version": gen_data.DATASET_VERSION}

    def verify_rows(self, query, table: str):
        """None when `table` holds exactly the base set 1..N of this (N, seed), else why not.
        query(sql) returns rows as lists of strings. Compares count, min and max of emp_id and
        the fields of a few sample rows with the generator's."""
        got = query(f"SELECT count(*), min(emp_id), max(emp_id) FROM {table}")
        if not got or got[0] != [str(self.n), "1", str(self.n)]:
            return f"{table} holds count/min/max emp_id {got[0] if got else '?'}, not {self.n}/1/{self.n}"
        want = gen_data.sample_rows(self.n, self.seed)
        ids = ", ".join(str(i) for i in sorted(want))
        rows = query(f"SELECT emp_id, emp_name, city, country, CAST(emp_dob AS TEXT) FROM {table} "
                     f"WHERE emp_id IN ({ids}) ORDER BY emp_id")
        have = {int(r[0]): tuple(r[1:]) for r in rows}
        if have != want:
            bad = sorted(i for i in want if have.get(i) != want[i])
            return f"{table}: sample rows {bad} differ from this dataset (another seed or generator version)"
        return None

    def migration_status(self, db_url: str, out_name: str) -> str:
        rc, text = self.product(["migrate", "--status"], db_url, out_name)
        if rc != 0:
            raise Fatal(f"employee-api migrate --status failed (see {self.log_dir / out_name})")
        return "\n".join(line for line in text.splitlines() if not line.startswith("$ "))

    def base_problem(self, backend: str, marker, db_url: str, query):
        """None when the base database can be reused, else why not."""
        if self.reload:
            return "RELOAD=1"
        if marker is None:
            return "no dataset marker"
        for k, v in self.expected_marker().items():
            if marker.get(k) != v:
                return f"it holds {k}={marker.get(k)}, not {v}"
        status = self.migration_status(db_url, f"import-{backend}.txt")
        if status != marker.get("migrations"):
            return "its migrations differ from this binary's"
        return self.verify_rows(query, "employees")

    def import_into(self, backend: str, db_url: str) -> dict:
        """`employee-api migrate`, then `employee-api employees import` of the base set; the
        figures of the import."""
        out_name = f"import-{backend}.txt"
        rc, _ = self.product(["migrate"], db_url, out_name)
        if rc != 0:
            raise Fatal(f"{backend}: employee-api migrate failed (see {self.log_dir / out_name})")
        csv_path = self.dataset_csv()
        self.log(f"{backend}: employee-api employees import {csv_path.name} ({self.n:,} rows; "
                 "about 65 s (SQLite) / 91 s (PostgreSQL) per million rows)")
        t0 = time.monotonic()
        rc, text = self.product(["employees", "import", str(csv_path)], db_url, out_name)
        wall = time.monotonic() - t0
        if rc != 0:
            tail = " | ".join(text.strip().splitlines()[-3:])
            raise Fatal(f"{backend}: the import failed: {tail} (see {self.log_dir / out_name})")
        m = re.search(r"imported (\d+) rows .*? in ([0-9.]+) s \((\d+) rows/s\)", text)
        secs = float(m.group(2)) if m else wall
        rate = int(m.group(3)) if m else int(self.n / max(wall, 1e-9))
        self.log(f"{backend}: imported {self.n:,} rows in {secs:.1f} s ({rate:,} rows/s; {wall:.1f} s wall)")
        return {"import_seconds": secs, "import_rows_per_s": rate, "import_wall_seconds": round(wall, 1)}

    def load_note(self, marker: dict, fresh: bool, extra: str) -> str:
        what = (f"{self.n} rows by `employee-api employees import` in {marker['import_seconds']:.1f} s "
                f"= {marker['import_rows_per_s']:,} rows/s")
        if fresh:
            return f"{what}; then {extra}"
        return f"already imported (skipped; {what} on {marker.get('imported_at', '?')[:10]}); {extra}"

    # ---- SQLite: base file + JSON marker; the run works on a copy
    def prepare_sqlite(self) -> None:
        base = self.data_dir / f"employees-{self.n}.base.db"
        marker_path = self.data_dir / f"employees-{self.n}.base.json"
        work = self.data_dir / f"employees-{self.n}.db"
        base_url = f"sqlite://{base}"

        def query(sql):
            con = sqlite3.connect(str(base), timeout=60)  # SELECTs only
            try:
                return [[("" if v is None else str(v)) for v in row] for row in con.execute(sql)]
            finally:
                con.close()

        marker = None
        if base.exists() and marker_path.exists():
            try:
                marker = json.loads(marker_path.read_text())
            except ValueError:
                marker = None
        problem = self.base_problem("sqlite", marker, base_url, query) if marker else (
            "RELOAD=1" if self.reload else "no imported dataset yet")
        fresh = problem is not None
        if fresh:
            self.log(f"sqlite: importing into {base.name} ({problem})")
            for p in (marker_path, base, Path(f"{base}-wal"), Path(f"{base}-shm")):
                p.unlink(missing_ok=True)
            figures = self.import_into("sqlite", base_url)
            t0 = time.monotonic()
            con = sqlite3.connect(str(base), timeout=60)
            con.execute("ANALYZE")
            con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            con.close()
            self.log(f"sqlite: ANALYZE + checkpoint {time.monotonic() - t0:.1f} s")
            problem = self.verify_rows(query, "employees")
            if problem:
                raise Fatal(f"sqlite: after the import: {problem}")
            marker = dict(self.expected_marker(), **figures,
                          migrations=self.migration_status(base_url, "import-sqlite.txt"),
                          imported_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"))
            marker_path.write_text(json.dumps(marker, indent=1, ensure_ascii=False) + "\n")
        else:
            self.log(f"sqlite: {base.name} already holds this dataset: import skipped")
        t0 = time.monotonic()
        for p in (work, Path(f"{work}-wal"), Path(f"{work}-shm"), Path(f"{work}.tmp")):
            p.unlink(missing_ok=True)
        shutil.copyfile(base, f"{work}.tmp")
        os.replace(f"{work}.tmp", work)
        took = time.monotonic() - t0
        self.log(f"sqlite: working copy {work.name} in {took:.1f} s")
        self.meta("load_sqlite", self.load_note(marker, fresh, f"copied to the run's file in {took:.1f} s"))
        self.sqlite_path = work
        self.db_url = f"sqlite://{work}"

    # ---- PostgreSQL: base database (its comment is the marker); the run works on a clone
    def prepare_postgres(self) -> None:
        base_url = self.pg_url(self.base_db)

        def query(sql):
            return [line.split("\t") for line in self.psql(self.base_db, sql).splitlines()]

        marker = None
        if self.db_exists(self.base_db):
            comment = self.psql("postgres", "SELECT shobj_description(oid, 'pg_database') FROM pg_database "
                                            f"WHERE datname = {literal(self.base_db)}")
            try:
                marker = json.loads(comment) if comment else None
            except ValueError:
                marker = None
        problem = self.base_problem("postgres", marker, base_url, query) if marker else (
            "RELOAD=1" if self.reload else "no imported dataset yet")
        fresh = problem is not None
        if fresh:
            self.log(f"postgres: importing into database {self.base_db} ({problem})")
            self.psql("postgres", f"DROP DATABASE IF EXISTS {ident(self.base_db)}")
            self.psql("postgres", f"CREATE DATABASE {ident(self.base_db)}")
            figures = self.import_into("postgres", base_url)
            t0 = time.monotonic()
            self.psql(self.base_db, "VACUUM (ANALYZE)")
            self.log(f"postgres: VACUUM (ANALYZE) {time.monotonic() - t0:.1f} s")
            problem = self.verify_rows(query, "employees")
            if problem:
                raise Fatal(f"postgres: after the import: {problem}")
            marker = dict(self.expected_marker(), **figures,
                          migrations=self.migration_status(base_url, "import-postgres.txt"),
                          imported_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"))
            self.psql("postgres", f"COMMENT ON DATABASE {ident(self.base_db)} IS "
                                  f"{literal(json.dumps(marker, ensure_ascii=False))}")
        else:
            self.log(f"postgres: database {self.base_db} already holds this dataset: import skipped")
        t0 = time.monotonic()
        self.psql("postgres", f"DROP DATABASE IF EXISTS {ident(self.bench_db)}")
        strategy = " STRATEGY FILE_COPY" if int(self.psql("postgres", "SHOW server_version_num")) >= 150000 else ""
        self.psql("postgres", f"CREATE DATABASE {ident(self.bench_db)} TEMPLATE {ident(self.base_db)}{strategy}")
        took = time.monotonic() - t0
        self.log(f"postgres: database {self.bench_db} cloned from {self.base_db} in {took:.1f} s")
        self.meta("load_postgres", self.load_note(marker, fresh, f"cloned into {self.bench_db} in {took:.1f} s"))
        self.db_url = self.pg_url(self.bench_db)

    def db_count(self, backend: str, where: str) -> int:
        sql = f"SELECT count(*) FROM employees WHERE {where}"
        if backend == "sqlite":
            con = sqlite3.connect(str(self.sqlite_path), timeout=60)
            try:
                return con.execute(sql).fetchone()[0]
            finally:
                con.close()
        return int(self.psql(self.bench_db, sql))

    def import_block(self, backend: str, lo: int, count: int) -> None:
        """Rows lo..lo+count-1 through `employee-api employees import`, into the live database
        (the server keeps running, as an operator's import would find it)."""
        path = self.data_dir / f"block-{backend}-{lo}-{count}.csv"
        self.temp_files.append(path)
        gen_data.write_csv_file(str(path), lo, count, self.seed)
        t0 = time.monotonic()
        rc, text = self.product(["employees", "import", str(path)], self.db_url, f"import-{backend}.txt")
        wall = time.monotonic() - t0
        path.unlink(missing_ok=True)
        if rc != 0:
            raise Fatal(f"{backend}: importing the write block failed: {' | '.join(text.strip().splitlines()[-3:])}")
        m = re.search(r"in ([0-9.]+) s \((\d+) rows/s\)", text)
        figures = f"{m.group(1)} s = {int(m.group(2)):,} rows/s" if m else f"{wall:.1f} s wall"
        self.log(f"{backend}: write block imported: {count:,} rows in {figures}")
        self.meta(f"load_{backend}_write_block",
                  f"{count} rows ({lo}..{lo + count - 1}) by `employee-api employees import` into the live "
                  f"database in {figures}")

    # -------------------------------------------------------------- wrk
    def run_wrk(self, backend, scen, pid, conns, script, warm, **vars_) -> None:
        threads = min(self.threads, conns)
        url = self.peer_base if backend == "peer" else self.base
        out = self.log_dir / f"wrk-{backend}-{scen}.txt"
        e = {k: str(v) for k, v in vars_.items()}
        e.update(BENCH_THREADS=str(threads), BENCH_N=str(self.n))

        def wrk(d, path):
            return self.run_child(["wrk", f"-t{threads}", f"-c{conns}", f"-d{d}", "--timeout", "10s",
                                   "-s", str(BENCH_DIR / "lua" / script), url], path, e)

        self.last = {}
        if warm not in ("0", "0s"):
            wrk(warm, Path(f"{out}.warmup"))
        t0 = cpu_ticks(pid)
        if wrk(self.duration, out) != 0:
            self.skip(backend, scen, f"wrk failed (see {out})")
            return
        t1 = cpu_ticks(pid)
        lines = [ln for ln in out.read_text(errors="replace").splitlines() if ln.startswith("BENCH_RESULT ")]
        if not lines:
            self.skip(backend, scen, f"no BENCH_RESULT line (see {out})")
            return
        r = dict(kv.split("=", 1) for kv in lines[-1].split()[1:] if "=" in kv)
        self.last = r
        note = ""
        if r.get("exhausted", "0") != "0":
            note = f"id block exhausted by {r['exhausted']} thread(s): req/s is a lower bound"
        n = int(r.get("requests", "0") or 0)
        cpu = f"{(t1 - t0) * 1e6 / os.sysconf('SC_CLK_TCK') / n:.0f}" if n > 0 else ""
        self.record(backend, scen, conns, r, hwm_mb(pid), cpu, note)
        self.log(f"{backend}/{scen}: {lines[-1][len('BENCH_RESULT '):]}")

    def read_url(self, backend, scen, pid, token, path, header="") -> None:
        """A GET scenario on one URL, checked once first (must answer 200, else skipped)."""
        if not self.want(scen):
            return
        base = self.peer_base if backend == "peer" else self.base
        status, _, _ = http("GET", base + path, token, header_arg(header))
        if status != 200:
            self.skip(backend, scen, f"GET {path} answered HTTP {status:03d}")
            return
        self.run_wrk(backend, scen, pid, self.connections, "urls.lua", self.warmup,
                     BENCH_TOKEN=token, BENCH_PATHS=path, BENCH_HEADERS=header)

    def common_reads(self, backend, pid, token) -> None:
        """The read scenarios shared with the peer."""
        if self.want("get_by_id"):
            base = self.peer_base if backend == "peer" else self.base
            status, _, _ = http("GET", f"{base}/employees/1", token)
            if status == 200:
                self.run_wrk(backend, "get_by_id", pid, self.connections, "get_by_id.lua", self.warmup,
                             BENCH_TOKEN=token)
            else:
                self.skip(backend, "get_by_id", f"GET /employees/1 answered HTTP {status:03d}")
        self.read_url(backend, "list_default", pid, token, "/employees/")
        self.read_url(backend, "filter_city_common", pid, token, "/employees/?city=london")
        self.read_url(backend, "filter_city_rare", pid, token, "/employees/?city=qqortoormiit")

    def get_token(self, base, user, password) -> str:
        body = urllib.parse.urlencode({"username": user, "password": password}).encode()
        status, _, text = http("POST", f"{base}/auth/token", data=body, timeout=30,
                               headers={"Content-Type": "application/x-www-form-urlencoded"})
        try:
            return json.loads(text)["access_token"]
        except (ValueError, KeyError, TypeError):
            raise Fatal(f"login as {user} at {base} failed: HTTP {status} {text[:200]!r}") from None

    # -------------------------------------------------------------- the Rust server
    def start_server(self, backend: str) -> None:
        if port_in_use(self.port):
            raise Fatal(f"something already listens on 127.0.0.1:{self.port} (set PORT=)")
        e = dict(os.environ, DATABASE_URL=self.db_url, BIND_ADDR=f"127.0.0.1:{self.port}",
                 JWT_SECRET_KEY=self.jwt_secret, ADMIN_USERNAME=ADMIN_USER, ADMIN_PASSWORD=self.admin_password,
                 RATE_LIMIT_PER_MINUTE="0", ACCESS_TOKEN_EXPIRE_MINUTES="240", RUST_LOG=self.server_log)
        log_path = self.log_dir / f"server-{backend}.log"
        with open(log_path, "a", encoding="utf-8") as out:
            self.server = subprocess.Popen([str(self.bin), "serve"], cwd=self.data_dir, env=e, stdout=out,
                                           stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                           start_new_session=True)
        if not self.wait_http(f"{self.base}/healthz", self.server, 120):
            tail = " | ".join(log_path.read_text(errors="replace").strip().splitlines()[-5:])
            raise Fatal(f"employee-api ({backend}) did not become healthy; log: {tail}")
        self.log(f"{backend}: employee-api up (pid {self.server.pid})")

    def run_backend(self, b: str) -> None:
        if b == "sqlite":
            self.prepare_sqlite()
        elif b == "postgres":
            self.prepare_postgres()
        else:
            raise Fatal(f"unknown backend '{b}' (sqlite, postgres)")
        self.start_server(b)
        pid = self.server.pid
        tok = self.get_token(self.base, ADMIN_USER, self.admin_password)

        # --- reads
        self.common_reads(b, pid, tok)
        self.read_url(b, "list_default_count_none", pid, tok, "/employees/", "Prefer: count=none")
        for field, order in (("emp_name", "asc"), ("emp_dob", "asc"), ("city", "asc"), ("country", "asc"),
                             ("emp_id", "desc"), ("emp_name", "desc")):
            self.read_url(b, f"sort_{field}_{order}", pid, tok, f"/employees/?sort_by={field}&order={order}")
        self.read_url(b, "filter_city_common_count_none", pid, tok, "/employees/?city=london", "Prefer: count=none")
        self.read_url(b, "deep_offset", pid, tok, f"/employees/?offset={self.n - 100}&limit=100")
        deep = self.n * 9 // 10 - 100
        for sort in ("emp_id", "emp_name"):
            scen = "deep_cursor" if sort == "emp_id" else f"deep_cursor_{sort}"
            if not self.want(scen):
                continue
            path = next_link(f"{self.base}/employees/?sort_by={sort}&offset={deep}&limit=100", tok)
            if not path:
                self.skip(b, scen, f'no Link rel="next" on GET /employees/?sort_by={sort}&offset={deep}')
                continue
            with open(self.log_dir / "cursors.txt", "a", encoding="utf-8") as f:
                f.write(f"{b}/{scen}\t{path}\n")
            self.read_url(b, scen, pid, tok, path)

        # --- writes: POST new ids; PATCH and DELETE a block imported for them (the base set
        # 1..N is never changed, so every scenario reads the same data)
        secs = secs_of(self.duration)
        post_base = self.n + POST_ID_OFFSET
        post_rps = 0.0
        if self.want("post"):
            before = self.db_count(b, f"emp_id >= {post_base}")
            self.run_wrk(b, "post", pid, self.connections, "post.lua", "0",
                         BENCH_TOKEN=tok, BENCH_ID_BASE=post_base, BENCH_ID_STRIDE=POST_ID_STRIDE)
            post_rps = float(self.last.get("rps", 0) or 0)
            created = self.db_count(b, f"emp_id >= {post_base}") - before
            self.meta(f"check_post_{b}", f"wrk counted {self.last.get('requests', '')} requests "
                                         f"({self.last.get('non2xx', '')} >= 400); {created} rows created")
        if self.want("patch") or self.want("delete"):
            if self.write_pool == "auto":
                pool = min(max(int(3 * post_rps * secs), 20_000), 300_000)
            else:
                pool = int(self.write_pool)
            lo, hi = self.n + 1, self.n + pool
            self.log(f"{b}: importing the write block {lo}..{hi}")
            self.import_block(b, lo, pool)
            if self.want("patch"):
                self.run_wrk(b, "patch", pid, self.connections, "patch.lua", "0",
                             BENCH_TOKEN=tok, BENCH_ID_LO=lo, BENCH_ID_HI=hi)
            if self.want("delete"):
                before = self.db_count(b, f"emp_id BETWEEN {lo} AND {hi}")
                self.run_wrk(b, "delete", pid, self.connections, "delete.lua", "0",
                             BENCH_TOKEN=tok, BENCH_ID_LO=lo, BENCH_ID_HI=hi)
                after = self.db_count(b, f"emp_id BETWEEN {lo} AND {hi}")
                self.meta(f"check_delete_{b}", f"wrk counted {self.last.get('requests', '')} requests "
                                               f"({self.last.get('non2xx', '')} >= 400); "
                                               f"{before - after} rows deleted of {pool}")
        if self.want("auth_token"):
            self.run_wrk(b, "auth_token", pid, self.auth_connections, "auth_token.lua", "0",
                         BENCH_TOKEN="", BENCH_USERNAME=ADMIN_USER, BENCH_PASSWORD=self.admin_password)

        peak = hwm_mb(pid)
        self.meta(f"peak_rss_{b}", f"{peak} MB (VmHWM of employee-api at the end of the {b} run)")
        self.log(f"{b}: peak RSS {peak} MB")
        self.stop(self.server, "employee-api")
        self.server = None

    # -------------------------------------------------------------- the peer
    def load_peer(self) -> None:
        """The peer's rows: the same N rows (plus the peer's own uuid `id`), COPYed into its
        own plain table `employee` (not our product, so no import path to go through)."""
        def query(sql):
            return [line.split("\t") for line in self.psql(self.peer_db, sql).splitlines()]

        if self.verify_rows(query, "employee") is None:
            self.log(f"peer: {self.peer_db}.employee already holds this dataset: load skipped")
            self.meta("load_peer", "already loaded (skipped)")
            return
        # One transaction: TRUNCATE, drop the secondary indexes (not those behind a
        # constraint), COPY with FREEZE, rebuild the indexes from their own definitions.
        q = ("SELECT i.indexrelid::regclass::text || chr(9) || pg_get_indexdef(i.indexrelid) FROM pg_index i "
             "WHERE i.indrelid = 'employee'::regclass AND NOT EXISTS "
             "(SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid) ORDER BY 1")
        indexes = [line.split("\t", 1) for line in self.psql(self.peer_db, q).splitlines() if line]
        cmds = ["SET maintenance_work_mem = '512MB'", "TRUNCATE employee"]
        cmds += [f"DROP INDEX {name}" for name, _ in indexes]
        cmds.append(f"\\copy employee ({', '.join(PEER_COLUMNS)}) FROM pstdin WITH (FORMAT csv, FREEZE)")
        cmds += [definition for _, definition in indexes]
        cmd = ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "--single-transaction", "-d", self.peer_db]
        for c in cmds:
            cmd += ["-c", c]
        self.log(f"peer: loading {self.n:,} rows into {self.peer_db}.employee (COPY)")
        t0 = time.monotonic()
        out = open(self.log_dir / "load-peer.txt", "a", encoding="utf-8")
        try:
            self.child = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=out, stderr=subprocess.STDOUT)
            try:
                with open(self.child.stdin.fileno(), "w", encoding="utf-8", newline="", closefd=False) as w:
                    gen_data.write_csv(w, 1, self.n, self.seed, "peer")
            except BrokenPipeError:
                pass
            self.child.stdin.close()
            rc = self.child.wait()
        finally:
            self.reap_child()
            out.close()
        if rc != 0:
            raise Fatal(f"loading the peer's rows failed (see {self.log_dir / 'load-peer.txt'})")
        secs = time.monotonic() - t0
        self.psql(self.peer_db, "VACUUM (ANALYZE) employee")
        self.meta("load_peer", f"{self.n} rows in {secs:.1f} s = {self.n / secs:,.0f} rows/s "
                               "(COPY FREEZE into its own table + index build)")
        self.log(f"peer: {self.n:,} rows in {secs:.1f} s")

    def run_peer(self) -> None:
        run_sh = self.peer_dir / "run.sh"
        if not os.access(run_sh, os.X_OK):
            raise Fatal(f"PEER=1 but no {run_sh}")
        # (its setup.sh, the venv and the role `peer`, is run by bench/run.sh)
        self.ensure_db(self.peer_db)
        self.psql(self.peer_db, f"GRANT ALL PRIVILEGES ON DATABASE {ident(self.peer_db)} TO peer; "
                                "GRANT ALL ON SCHEMA public TO peer")
        if port_in_use(self.peer_port):
            raise Fatal(f"something already listens on 127.0.0.1:{self.peer_port} (set PEER_PORT=)")
        e = dict(os.environ, PORT=str(self.peer_port), WORKERS=self.peer_workers, ACCESS_LOG="0", SQL_ECHO="0",
                 DATABASE_URL=f"postgresql+asyncpg://peer:peer@127.0.0.1:{self.pgport}/{self.peer_db}")
        with open(self.log_dir / "peer.log", "a", encoding="utf-8") as out:
            self.peer_proc = subprocess.Popen([str(run_sh)], env=e, stdout=out, stderr=subprocess.STDOUT,
                                              stdin=subprocess.DEVNULL, start_new_session=True)
        if not self.wait_http(f"{self.peer_base}/", self.peer_proc, 120):
            tail = " | ".join((self.log_dir / "peer.log").read_text(errors="replace").strip().splitlines()[-5:])
            raise Fatal(f"the peer did not come up; log: {tail}")
        self.log(f"peer: up (pid {self.peer_proc.pid}, {self.peer_workers} workers)")
        self.load_peer()
        tok = self.get_token(self.peer_base, PEER_ADMIN_USER, PEER_ADMIN_PASSWORD)
        self.common_reads("peer", self.peer_proc.pid, tok)
        self.meta("peak_rss_peer", f"{hwm_mb(self.peer_proc.pid)} MB (sum of VmHWM over uvicorn and its workers)")
        self.stop(self.peer_proc, "peer", group=True)
        self.peer_proc = None

    # -------------------------------------------------------------- main
    def write_meta_header(self) -> None:
        def out(cmd):
            p = subprocess.run(cmd, capture_output=True, text=True)
            return p.stdout.strip() if p.returncode == 0 else ""

        def first_line(cmd):  # `wrk -v` prints its version and exits 1
            p = subprocess.run(cmd, capture_output=True, text=True)
            return ((p.stdout + p.stderr).strip().splitlines() or [""])[0]

        commit = out(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"]) or "none"
        if subprocess.run(["git", "-C", str(ROOT), "diff", "--quiet", "HEAD"], capture_output=True).returncode != 0:
            commit += " (+ uncommitted changes)"
        model = "?"
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
        with open("/proc/meminfo") as f:
            mem_kb = int(next(line for line in f if line.startswith("MemTotal")).split()[1])
        self.meta("date", dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))
        self.meta("commit", commit)
        self.meta("cpu", f"{os.cpu_count()} x {model}")
        self.meta("memory", f"{mem_kb / 1048576:.1f} GiB")
        self.meta("kernel", os.uname().release)
        self.meta("postgres", f"{self.psql('postgres', 'SHOW server_version')}, "
                              f"shared_buffers {self.psql('postgres', 'SHOW shared_buffers')}")
        self.meta("wrk", " ".join(first_line(["wrk", "-v"]).split()[:2]))
        self.meta("params", f"N={self.n} DURATION={self.duration} WARMUP={self.warmup} CONNECTIONS={self.connections} "
                            f"THREADS={self.threads} AUTH_CONNECTIONS={self.auth_connections}")
        self.meta("load_avg_start", " ".join(open("/proc/loadavg").read().split()[:3]))

    def run(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.results_dir.mkdir(parents=True, exist_ok=True)
        self.tsv.write_text("")
        self.meta_path.write_text("")
        if self.n < 1000:
            raise Fatal("N must be an integer of at least 1000")
        unknown = [s for s in self.scenarios if s != "all" and s not in SCENARIOS_ALL]
        if unknown:
            raise Fatal(f"unknown scenario(s) {' '.join(unknown)}; known: {' '.join(SCENARIOS_ALL)}")
        self.log(f"logs in {self.log_dir}")
        for tool in ("wrk", "psql", "pgbench", "pg_isready"):
            if shutil.which(tool) is None:
                raise Fatal(f"{tool} not found (bench/run.sh installs it)")
        if not os.access(self.bin, os.X_OK):
            raise Fatal(f"no server binary at {self.bin} (set BIN=, or let bench/run.sh build it)")
        self.check_postgres()
        self.write_meta_header()

        self.pgbench_prepare()
        self.pgbench_run("before")
        for b in self.backends:
            self.run_backend(b)
        if self.peer:
            self.run_peer()
        self.pgbench_run("after")
        self.meta("load_avg_end", " ".join(open("/proc/loadavg").read().split()[:3]))

        text = report.render(report.load(self.tsv), report.load_meta(self.meta_path), self.pgbench_tps)
        path = self.results_dir / f"{time.strftime('%Y-%m-%d')}.md"
        tmp = Path(f"{path}.tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
        sys.stdout.write(text)
        self.log(f"written to {path} (raw: {self.log_dir})")


def main() -> int:
    bench = Bench()

    def on_signal(signum, _frame):
        raise Interrupted(signum)

    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, on_signal)
    rc = 0
    try:
        bench.run()
    except Interrupted as e:
        bench.log(f"interrupted ({e}): stopping what this run started")
        rc = e.code
    except Fatal as e:
        bench.log(f"ERROR: {e}")
        rc = 1
    finally:
        for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(s, signal.SIG_IGN)
        bench.cleanup()
    return rc


if __name__ == "__main__":
    sys.exit(main())
