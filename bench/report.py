#!/usr/bin/env python3
"""The markdown report of one benchmark run: bench.py calls render() at the end of a run.

It also re-renders a finished run from its raw files (bench/data/logs/<time>/):

    report.py --tsv results.tsv --meta meta.txt --pgbench TPS [TPS ...]

results.tsv columns (no header; COLS below): backend scenario conns rps p50_ms p90_ms p99_ms
max_ms requests non2xx socket_errors timeouts rss_mb cpu_us_per_req note
meta.txt: "key<TAB>value" lines.
"""

from __future__ import annotations

import argparse
import re
import sys

COLS = ["backend", "scenario", "conns", "rps", "p50", "p90", "p99", "max", "requests", "non2xx",
        "sockerr", "timeouts", "rss", "cpu", "note"]

FIRST_PAGES = ["list_default", "list_default_count_none", "sort_emp_name_asc", "sort_emp_dob_asc",
               "sort_city_asc", "sort_country_asc", "sort_emp_id_desc", "sort_emp_name_desc"]
SCENARIO_ORDER = ["get_by_id", "list_default", "list_default_count_none", "sort_emp_name_asc",
                  "sort_emp_name_desc", "sort_emp_dob_asc", "sort_city_asc", "sort_country_asc",
                  "sort_emp_id_desc", "filter_city_common", "filter_city_common_count_none",
                  "filter_city_rare", "deep_offset", "deep_cursor", "deep_cursor_emp_name",
                  "post", "patch", "delete", "auth_token"]
PEER_READS = ["get_by_id", "list_default", "filter_city_common", "filter_city_rare"]


def num(s: str):
    try:
        return float(s)
    except (TypeError, ValueError):
        return None


def fmt(x, digits=1):
    if x is None:
        return "–"
    if abs(x) >= 100 or digits == 0:
        return f"{x:,.0f}"
    return f"{x:,.{digits}f}"


def load(path):
    rows = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            parts += [""] * (len(COLS) - len(parts))
            rows.append(dict(zip(COLS, parts)))
    return rows


def load_meta(path):
    meta = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            if "\t" in line:
                k, v = line.rstrip("\n").split("\t", 1)
                meta[k] = v
    return meta


def render(rows, meta, pgbench) -> str:
    """rows: dicts keyed by COLS; meta: {key: value}; pgbench: the tps figures (before, after)."""
    tps = [t for t in (num(x) for x in pgbench) if t]
    ref = sum(tps) / len(tps) if tps else None

    out = []
    w = out.append
    w(f"# employee-api benchmark, {meta.get('date', '?')}")
    w("")
    w(f"- machine: {meta.get('cpu', '?')}, {meta.get('memory', '?')}, Linux {meta.get('kernel', '?')}")
    w(f"- PostgreSQL {meta.get('postgres', '?')}; {meta.get('wrk', 'wrk')}")
    w(f"- server commit: {meta.get('commit', '?')}")
    w(f"- {meta.get('params', '')}")
    w(f"- load average at start / end: {meta.get('load_avg_start', '?')} / {meta.get('load_avg_end', '?')}"
      " (anything else running on the 2 cores skews every figure)")
    if ref:
        w(f"- `pgbench -S -M prepared` (select-only, same concurrency): "
          f"{' / '.join(fmt(t, 0) for t in tps)} tps (before / after); reference = mean = **{fmt(ref, 0)} tps**")
    for k in sorted(meta):
        if k.startswith("load_") and k not in ("load_avg_start", "load_avg_end"):
            w(f"- data load ({k[5:]}): {meta[k]}")
    w("")
    w("| scenario | backend | conns | req/s | p50 ms | p99 ms | non-2xx | sock err | ratio to pgbench | peak RSS MB | server CPU µs/req | note |")
    w("|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|")
    order = [s for s in SCENARIO_ORDER if any(r["scenario"] == s for r in rows)]
    for r in rows:
        if r["scenario"] not in order:
            order.append(r["scenario"])
    backends = []
    for r in rows:
        if r["backend"] not in backends:
            backends.append(r["backend"])
    by = {(r["backend"], r["scenario"]): r for r in rows}
    for s in order:
        for b in backends:
            r = by.get((b, s))
            if not r:
                continue
            rps = num(r["rps"])
            sockerr = (num(r["sockerr"]) or 0) + (num(r["timeouts"]) or 0) if r["rps"] else None
            ratio = f"{rps / ref:.2f}" if (rps is not None and ref) else "–"
            w(f"| {s} | {b} | {r['conns'] or '–'} | {fmt(rps)} | {fmt(num(r['p50']), 2)} | {fmt(num(r['p99']), 2)} "
              f"| {r['non2xx'] or '–'} | {fmt(sockerr, 0) if sockerr is not None else '–'} | {ratio} "
              f"| {r['rss'] or '–'} | {r['cpu'] or '–'} | {r['note']} |")
    w("")
    peaks = {k[len('peak_rss_'):]: v for k, v in meta.items() if k.startswith("peak_rss_")}
    if peaks:
        w("Peak RSS (VmHWM at the end of each backend's run): " +
          "; ".join(f"{b}: {v}" for b, v in peaks.items()))
        w("")
    checks = [v for k, v in sorted(meta.items()) if k.startswith("check_")]
    if checks:
        w("Write checks (rows counted in the database around the scenario): " +
          "; ".join(f"{k[6:]}: {v}" for k, v in sorted(meta.items()) if k.startswith("check_")))
        w("")

    # ---- peer comparison
    if "peer" in backends:
        w("## Rust (PostgreSQL) vs the original FastAPI service (same PostgreSQL, same rows)")
        w("")
        w("| scenario | Rust req/s | peer req/s | Rust/peer | Rust p50 ms | peer p50 ms |")
        w("|---|--:|--:|--:|--:|--:|")
        for s in PEER_READS:
            a, p = by.get(("postgres", s)), by.get(("peer", s))
            if not a or not p:
                continue
            ra, rp = num(a["rps"]), num(p["rps"])
            ratio = f"{ra / rp:.1f}" if (ra and rp) else "–"
            w(f"| {s} | {fmt(ra)} | {fmt(rp)} | {ratio} | {fmt(num(a['p50']), 2)} | {fmt(num(p['p50']), 2)} |")
        w("")

    # ---- targets of issue 4
    w("## Targets (issue 4)")
    w("")
    w("| target | measured | met |")
    w("|---|---|---|")

    def verdict(ok):
        return "–" if ok is None else ("yes" if ok else "**no**")

    g = by.get(("postgres", "get_by_id"))
    if g and ref and num(g["rps"]):
        x = num(g["rps"]) / ref
        w(f"| PG `GET /employees/{{id}}` >= 50% of pgbench -S | {x:.0%} ({fmt(num(g['rps']))} / {fmt(ref, 0)}) | {verdict(x >= 0.5)} |")
    for b in ("sqlite", "postgres"):
        ps = [(s, num(by[(b, s)]["p99"])) for s in FIRST_PAGES if (b, s) in by and num(by[(b, s)]["p99"]) is not None]
        if ps:
            worst = max(ps, key=lambda t: t[1])
            w(f"| {b}: first pages (default + sorted) p99 < 20 ms | worst {worst[1]:.2f} ms ({worst[0]}) | {verdict(worst[1] < 20)} |")
        r = by.get((b, "filter_city_rare"))
        if r and num(r["p50"]) is not None:
            w(f"| {b}: rare `city` filter p50 < 10 ms | {num(r['p50']):.2f} ms | {verdict(num(r['p50']) < 10)} |")
        for deep, first in (("deep_cursor", "list_default"), ("deep_cursor_emp_name", "sort_emp_name_asc")):
            d, f0 = by.get((b, deep)), by.get((b, first))
            if d and f0 and num(d["rps"]) and num(f0["rps"]):
                x = num(d["rps"]) / num(f0["rps"])
                w(f"| {b}: {deep} (0.9 N deep) within 20% of {first} | {x:.0%} of its req/s "
                  f"(p50 {num(d['p50']):.2f} vs {num(f0['p50']):.2f} ms) | {verdict(x >= 0.8)} |")
    for b, v in peaks.items():
        if b == "peer":
            continue
        m = re.match(r"\s*(\d+)", v)
        if m:
            w(f"| {b}: server peak RSS < 150 MB | {m.group(1)} MB | {verdict(int(m.group(1)) < 150)} |")
    if "peer" in backends:
        for s in PEER_READS:
            a, p = by.get(("postgres", s)), by.get(("peer", s))
            if a and p and num(a["rps"]) and num(p["rps"]):
                x = num(a["rps"]) / num(p["rps"])
                w(f"| {s}: Rust >= 20x the peer | {x:.1f}x | {verdict(x >= 20)} |")
    w("")
    w("Ratios to pgbench compare each API figure with what PostgreSQL itself serves on this machine "
      "at the same concurrency (a primary-key SELECT per transaction, no HTTP, no JSON, no auth). "
      "non-2xx counts responses with status >= 400; sock err = connect/read/write errors + timeouts.")
    return "\n".join(out) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tsv", required=True)
    ap.add_argument("--meta", required=True)
    ap.add_argument("--pgbench", nargs="*", default=[])
    args = ap.parse_args()
    sys.stdout.write(render(load(args.tsv), load_meta(args.meta), args.pgbench))


if __name__ == "__main__":
    main()
