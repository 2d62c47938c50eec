#!/usr/bin/env python3
"""Runs every shell example of README.md, in order, against a fresh server, and checks the
results the README states. Also checks that every test SECURITY.md names exists.

Standard library only. Usage (what `.ci/run`'s docs stage does):

    python3 .ci/readme_examples.py --bin target/debug/employee-api

How README.md marks its examples:

- Every fenced block whose info string is `sh` is run, in the order of the file, in one bash
  session (variables and background jobs carry over from block to block). A block preceded by
  an HTML comment `<!-- not run: REASON -->` is skipped, and the reason is printed.
- A line `# -> EXPECTATION` states the result of the command just above it:
    `# -> 201 {"id":2}`               HTTP status of the command's last curl call, and a JSON
                                      value the body must contain (objects: these keys with these
                                      values; arrays: same length, each element contained)
    `# -> 200 [...]; X-Total-Count: 1; Link: </employees/?cursor=*>; rel="next"`
                                      headers after `;` (`*` matches anything; `absent`)
    `# -> exit 2`                     the command's exit status (default: 0)
    `# -> stdout: TEXT`, `# -> stderr: TEXT`
                                      text the command printed (substring)
  Parts combine with `;`. A command without an expectation must still exit 0.

What the harness changes, so that the examples run on a CI machine exactly as written:
`cargo run --release` runs the binary given by --bin (a symlink at ./target/release/employee-api
in a fresh working directory, where `examples/` is copied too); `127.0.0.1:8000` becomes a free
loopback port; the PostgreSQL database `employee_api` gets a unique name, and is dropped at the
end. Nothing else is rewritten.
"""

import argparse
import fnmatch
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Command:
    def __init__(self, block, line, text):
        self.block = block
        self.line = line  # README line number of its first line
        self.text = text
        self.expect = []  # raw expectation strings

    def short(self):
        first = self.text.splitlines()[0]
        return first if len(first) <= 90 else first[:87] + "..."


def parse_readme(path):
    """The runnable commands of the README, in order, and the skipped blocks."""
    lines = open(path, encoding="utf-8").read().splitlines()
    commands, skipped = [], []
    i, block = 0, 0
    pending_skip = None
    while i < len(lines):
        line = lines[i]
        m = re.match(r"<!--\s*not run:\s*(.*?)\s*-->", line.strip())
        if m:
            pending_skip = m.group(1)
            i += 1
            continue
        if line.startswith("```"):
            info = line[3:].strip()
            start = i + 1
            j = start
            while j < len(lines) and not lines[j].startswith("```"):
                j += 1
            body = lines[start:j]
            if info == "sh":
                block += 1
                if pending_skip is not None:
                    skipped.append((start, pending_skip))
                else:
                    commands.extend(parse_block(block, start + 1, body))
            pending_skip = None
            i = j + 1
            continue
        if line.strip():
            pending_skip = pending_skip if line.strip().startswith("<!--") else None
        i += 1
    return commands, skipped


def parse_block(block, first_line, body):
    commands = []
    current = None
    k = 0
    while k < len(body):
        raw = body[k]
        stripped = raw.strip()
        if stripped.startswith("# ->"):
            if not commands:
                raise SystemExit(f"README line {first_line + k}: an expectation with no command above it")
            commands[-1].expect.append(stripped[4:].strip())
            k += 1
            continue
        if not stripped or stripped.startswith("#"):
            k += 1
            continue
        text = [raw]
        start = k
        while text[-1].rstrip().endswith("\\") and k + 1 < len(body):
            k += 1
            text.append(body[k])
        current = Command(block, first_line + start, "\n".join(text))
        commands.append(current)
        k += 1
    return commands


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


PREAMBLE = r"""
__H=%(state)s
curl() {
    rm -f "$__H/last.status" "$__H/last.headers" "$__H/last.body"
    command curl -D "$__H/last.headers" -o "$__H/last.body" -w '%%{http_code}' "$@" > "$__H/last.status"
    local rc=$?
    cat "$__H/last.body" 2>/dev/null
    return $rc
}
__done() {
    local n=$1 rc=$2
    echo "$rc" > "$__H/$n.rc"
    for part in status headers body; do
        if [ -f "$__H/last.$part" ]; then mv "$__H/last.$part" "$__H/$n.$part"; fi
    done
}
"""


def build_script(commands, state):
    # Each command runs in the current shell (a brace group, so variables and `$!` of
    # background jobs carry over), its output kept in files, then shown.
    out = [PREAMBLE % {"state": shell_quote(state)}]
    for n, c in enumerate(commands):
        out.append('rm -f "$__H"/last.*')
        out.append(f'printf "\\n$ %s\\n" {shell_quote(c.short())}')
        out.append("{ " + c.text + f'\n}} > "$__H/{n}.out" 2> "$__H/{n}.err"')
        out.append(f"__done {n} $?")
        out.append(f'cat "$__H/{n}.out"; cat "$__H/{n}.err" >&2')
    return "\n".join(out) + "\n"


def shell_quote(s):
    return "'" + s.replace("'", "'\\''") + "'"


def read(path):
    try:
        with open(path, encoding="utf-8", errors="replace", newline="") as f:
            return f.read()
    except FileNotFoundError:
        return None


def contains(actual, expected):
    """Whether JSON value `actual` contains `expected` (see the module doc)."""
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(
            k in actual and contains(actual[k], v) for k, v in expected.items()
        )
    if isinstance(expected, list):
        return (
            isinstance(actual, list)
            and len(actual) == len(expected)
            and all(contains(a, e) for a, e in zip(actual, expected))
        )
    return actual == expected


PART_START = re.compile(r"\s*(exit \d|stdout:|stderr:|[A-Za-z][A-Za-z0-9-]*:\s)")


def split_parts(text):
    """Splits an expectation at each `;` outside JSON that starts a new part (a header
    value such as `<...>; rel="next"` keeps its own semicolons)."""
    parts, depth, quote, cur = [], 0, False, ""
    for i, ch in enumerate(text):
        if ch == '"' and (not cur or cur[-1] != "\\"):
            quote = not quote
        if not quote:
            if ch in "[{":
                depth += 1
            elif ch in "]}":
                depth -= 1
            elif ch == ";" and depth == 0 and PART_START.match(text, i + 1):
                parts.append(cur.strip())
                cur = ""
                continue
        cur += ch
    if cur.strip():
        parts.append(cur.strip())
    return parts


def check(command, n, state):
    """Problems with command n's result, as a list of strings."""
    problems = []
    rc = read(os.path.join(state, f"{n}.rc"))
    rc = int(rc) if rc and rc.strip().lstrip("-").isdigit() else None
    status = read(os.path.join(state, f"{n}.status"))
    headers_raw = read(os.path.join(state, f"{n}.headers")) or ""
    body = read(os.path.join(state, f"{n}.body"))
    stdout = read(os.path.join(state, f"{n}.out")) or ""
    stderr = read(os.path.join(state, f"{n}.err")) or ""
    headers = {}
    for line in headers_raw.splitlines():
        if ":" in line:
            k, v = line.split(":", 1)
            headers.setdefault(k.strip().lower(), []).append(v.strip())
    if body is not None and body.startswith("HTTP/"):  # curl -i: the head is in the body too
        body = body.split("\r\n\r\n", 1)[1] if "\r\n\r\n" in body else ""
    want_exit = 0
    for exp in command.expect:
        for part in split_parts(exp):
            m = re.match(r"^exit (\d+)$", part)
            if m:
                want_exit = int(m.group(1))
                continue
            m = re.match(r"^(stdout|stderr): (.*)$", part)
            if m:
                text = stdout if m.group(1) == "stdout" else stderr
                if m.group(2) not in text:
                    problems.append(f"{m.group(1)} lacks {m.group(2)!r}; got {text.strip()[:300]!r}")
                continue
            m = re.match(r"^(\d{3})(?:\s+(.*))?$", part, re.S)
            if m:
                got = (status or "").strip()
                if got != m.group(1):
                    problems.append(f"HTTP status {got or 'none (no curl call?)'}, expected {m.group(1)}")
                if m.group(2):
                    try:
                        want = json.loads(m.group(2))
                    except json.JSONDecodeError as e:
                        problems.append(f"README expectation is not JSON ({e}): {m.group(2)}")
                        continue
                    try:
                        actual = json.loads(body or "")
                    except json.JSONDecodeError:
                        problems.append(f"body is not JSON: {(body or '')[:300]!r}")
                        continue
                    if not contains(actual, want):
                        problems.append(f"body {json.dumps(actual)[:400]} does not contain {json.dumps(want)}")
                continue
            m = re.match(r"^([A-Za-z0-9-]+):\s*(.*)$", part)
            if m:
                name, want = m.group(1).lower(), m.group(2)
                got = headers.get(name)
                if want == "absent":
                    if got:
                        problems.append(f"header {m.group(1)} present ({got[0]!r}), expected absent")
                elif not got:
                    problems.append(f"header {m.group(1)} missing (expected {want!r})")
                elif not any(fnmatch.fnmatchcase(g, want) for g in got):
                    problems.append(f"header {m.group(1)} is {got[0]!r}, expected {want!r}")
                continue
            problems.append(f"cannot read the expectation {part!r}")
    if rc is None:
        problems.append("did not run (an earlier command stopped the script?)")
    elif rc != want_exit:
        problems.append(f"exit status {rc}, expected {want_exit}; stderr: {stderr.strip()[-300:]!r}")
    return problems


def check_security_tests(root):
    """Every test SECURITY.md's claims table names must exist in tests/ or src/."""
    text = open(os.path.join(root, "SECURITY.md"), encoding="utf-8").read()
    m = re.search(r"^## Claims and their tests\s*$(.*?)(?=^## )", text, re.M | re.S)
    if not m:
        return ["SECURITY.md has no '## Claims and their tests' section"], 0
    names = []
    for line in m.group(1).splitlines():
        if not line.startswith("|") or line.startswith("|---") or line.startswith("| claim"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        found = re.findall(r"`([A-Za-z_][A-Za-z0-9_:]*)`", cells[-1])
        if not found:
            names.append((line, None))
        names.extend((line, f) for f in found)
    sources = []
    for base in ("tests", "src"):
        for dirpath, _, files in os.walk(os.path.join(root, base)):
            for f in files:
                if f.endswith(".rs"):
                    sources.append(open(os.path.join(dirpath, f), encoding="utf-8").read())
    source = "\n".join(sources)
    problems = []
    for line, name in names:
        if name is None:
            problems.append(f"SECURITY.md claim names no test: {line[:100]}")
            continue
        leaf = name.split("::")[-1]
        pattern = rf"\bfn\s+{re.escape(leaf)}\s*[(<]|db_test!\(\s*{re.escape(leaf)}\s*,|\bmod\s+{re.escape(leaf)}\b"
        if not re.search(pattern, source):
            problems.append(f"SECURITY.md names a test that does not exist: {name}")
    return problems, len(names)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", required=True, help="the employee-api binary to run")
    ap.add_argument("--readme", default=os.path.join(ROOT, "README.md"))
    ap.add_argument("--pg", default=os.environ.get("README_PG_URL", "postgres://postgres@127.0.0.1:5432/postgres"),
                    help="a PostgreSQL database to create and drop the examples' database from")
    ap.add_argument("--timeout", type=float, default=300)
    ap.add_argument("--keep", action="store_true", help="keep the working directory")
    args = ap.parse_args()

    problems, count = check_security_tests(ROOT)
    print(f"SECURITY.md: {count} claim tests named; {len(problems)} missing")
    for p in problems:
        print("  FAIL " + p)

    commands, skipped = parse_readme(args.readme)
    binary = os.path.abspath(args.bin)
    if not os.access(binary, os.X_OK):
        raise SystemExit(f"readme_examples: {binary} is not an executable")
    work = tempfile.mkdtemp(prefix="readme-examples.")
    state = os.path.join(work, ".harness")
    os.makedirs(state)
    os.makedirs(os.path.join(work, "target", "release"))
    os.symlink(binary, os.path.join(work, "target", "release", "employee-api"))
    shutil.copytree(os.path.join(ROOT, "examples"), os.path.join(work, "examples"))
    port = free_port()
    database = f"readme_{os.getpid()}"
    for c in commands:
        c.text = (c.text.replace("cargo run --release", "./target/release/employee-api")
                  .replace("127.0.0.1:8000", f"127.0.0.1:{port}")
                  .replace("employee_api", database))
    script = build_script(commands, state)
    with open(os.path.join(state, "script.sh"), "w") as f:
        f.write(script)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": work,
        "LANG": "C.UTF-8",
        "BIND_ADDR": f"127.0.0.1:{port}",
        "no_proxy": "127.0.0.1,localhost",
        "NO_PROXY": "127.0.0.1,localhost",
    }
    print(f"README.md: {len(commands)} commands in order, {len(skipped)} blocks not run; server port {port}; in {work}")
    for line, reason in skipped:
        print(f"  not run: the block at README line {line}: {reason}")
    proc = subprocess.Popen(["bash", os.path.join(state, "script.sh")], cwd=work, env=env,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        proc.wait(timeout=args.timeout)
    except subprocess.TimeoutExpired:
        problems.append(f"the examples did not finish within {args.timeout:.0f} s")
    finally:
        # Everything the examples left running (servers in the background) is in the group.
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            time.sleep(1)
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
        subprocess.run(["psql", args.pg, "-X", "-q", "-c", f"DROP DATABASE IF EXISTS {database} WITH (FORCE)"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)

    print("\n==== README.md examples ====")
    failed = 0
    for n, c in enumerate(commands):
        found = check(c, n, state)
        expect = "; ".join(c.expect) if c.expect else "exit 0"
        mark = "ok  " if not found else "FAIL"
        print(f"{mark} line {c.line}: {c.short()}\n       expected: {expect}")
        for p in found:
            print(f"       {p}")
        if found:
            failed += 1
    print(f"\n{len(commands) - failed} passed, {failed} failed")
    for p in problems:
        print("FAIL " + p)
    if failed or problems:
        print(f"(working directory kept: {work})")
        sys.exit(1)
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
