#!/usr/bin/env python3
"""Deterministic, realistic employee data for the benchmark suite, and fast bulk loads.

Every row is a pure function of (seed, first emp_id of the batch, position), so the same
command always produces the same rows:

- emp_id: start .. start+count-1 (the base set is 1..N)
- id: a version-4 UUID drawn from the seeded RNG
- emp_name: "<first> <last>" from ~200 first and ~200 last names (some non-ASCII)
- (city, country): Zipf-like over ~300 pairs (rank r has weight 1/(r+2)); the top city
  ("London") holds about 7% of the rows, the least common about 0.07%. Five rare pairs
  are placed deterministically at emp_id % 100000 in {4242, 24242, 44242, 64242, 84242}:
  exactly N/100000 rows each (10 in 1,000,000). RARE_CITY ("Ittoqqortoormiit") is the
  one the rare-filter scenario searches.
- emp_dob: uniform over 1950-01-01 .. 2006-12-31
- city_folded / country_folded: Python's str.lower() of city / country (for this data
  identical to Rust's str::to_lowercase, which the server uses).

Usage:
  gen_data.py csv   --n N [--start S] [--count C] [--columns rust|peer|api]   # CSV to stdout (api: the import format)
  gen_data.py stats --n N                                                  # distribution
  gen_data.py load  --backend sqlite   --target PATH        --n N [--start S --count C]
  gen_data.py load  --backend postgres --target postgres://... --n N [--start S --count C]
  gen_data.py load  --backend peer     --target postgres://... --n N [--truncate]

`load` of the base set (no --start) first deletes rows with emp_id > N (left over from the
write scenarios of an earlier run), then skips the load if the table already holds exactly
emp_id 1..N of this dataset. If the table holds anything else it refuses with exit code 3
(run.sh then recreates the database), unless --truncate is given (allowed only for the peer's
plain table, which has no triggers that a TRUNCATE would bypass).
`--start S --count C` appends the rows S..S+C-1 (a block for the PATCH/DELETE scenarios),
through the table's triggers and indexes, as the live server would see them.

The base load into an empty table takes a bulk path: PostgreSQL drops the secondary indexes,
COPYs with FREEZE and rebuilds them, in one transaction; SQLite drops the triggers and
secondary indexes, inserts with executemany, recreates them, rebuilds the FTS5 index and sets
the row counter (only when every trigger is of those kinds; else it inserts row by row).

The schema must already exist (`employee-api migrate`, or the peer app's create_all).
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import io
import os
import random
import re
import sqlite3
import subprocess
import sys
import time
import uuid

DEFAULT_SEED = 20261127
BATCH = 20_000

FIRST_NAMES = """
James Mary John Patricia Robert Jennifer Michael Linda William Elizabeth David Barbara Richard
Susan Joseph Jessica Thomas Sarah Charles Karen Christopher Lisa Daniel Nancy Matthew Betty
Anthony Margaret Mark Sandra Donald Ashley Steven Kimberly Paul Emily Andrew Donna Joshua
Michelle Kenneth Carol Kevin Amanda Brian Melissa George Deborah Timothy Stephanie Ronald
Rebecca Edward Sharon Jason Laura Jeffrey Cynthia Ryan Kathleen Jacob Amy Gary Angela Nicholas
Shirley Eric Anna Jonathan Brenda Stephen Pamela Larry Emma Justin Nicole Scott Helen Brandon
Samantha Benjamin Katherine Samuel Christine Gregory Debra Alexander Rachel Frank Carolyn
Patrick Janet Raymond Catherine Jack Maria Dennis Heather Jerry Diane Tyler Ruth Aaron Julie
José Zoë Łukasz Søren Björn François Chloé Jürgen Agnieszka Małgorzata Renée Anaïs Héctor
Inés Ramón Andrés Sebastián Joël Noël Åsa Bjørn Göran Jörg Zoltán Dávid Ádám Tomáš Jiří
Radosław Paweł Wojciech Ştefan Ioana Oğuz Çağla Şebnem Mónica Lúcia João Conceição Íñigo
Aurélie Cécile Hélène Léa Maël Thérèse Gaëlle Øystein Ásgeir Þórunn Guðrún Eiríkur Sigríður
Wei Li Ming Hiroshi Yuki Sakura Haruto Aiko Jun Min-jun Seo-yeon Ji-ho Priya Arjun Ananya
Rahul Aditya Fatima Aisha Omar Youssef Layla Mohammed Amir Leila Chidi Ngozi Kwame Amara
Tariq Olumide Siobhán Aoife Niamh Seán Caoimhe Eoin Dagný Mateo Valentina Santiago Camila
Lucía Martín Sofía Diego Pablo Élodie Mathéo
""".split()

LAST_NAMES = """
Smith Johnson Williams Brown Jones Garcia Miller Davis Rodriguez Martinez Hernandez Lopez
Gonzalez Wilson Anderson Thomas Taylor Moore Jackson Martin Lee Perez Thompson White Harris
Sanchez Clark Ramirez Lewis Robinson Walker Young Allen King Wright Scott Torres Nguyen Hill
Flores Green Adams Nelson Baker Hall Rivera Campbell Mitchell Carter Roberts Gomez Phillips
Evans Turner Diaz Parker Cruz Edwards Collins Reyes Stewart Morris Morales Murphy Cook Rogers
Gutierrez Ortiz Morgan Cooper Peterson Bailey Reed Kelly Howard Ramos Kim Cox Ward Richardson
Watson Brooks Chavez Wood James Bennett Gray Mendoza Ruiz Hughes Price Alvarez Castillo
Sanders Patel Myers Long Ross Foster Jiménez Müller Schmidt Schneider Fischer Weber Meyer
Wagner Becker Schulz Hoffmann Schäfer Koch Bauer Richter Klein Wolf Schröder Neumann
Schwarz Zimmermann Braun Krüger Hofmann Hartmann Lange Köhler Nowak Kowalski Wiśniewski
Wójcik Kowalczyk Kamiński Lewandowski Zieliński Szymański Woźniak Dąbrowski Kozłowski
Jankowski Mazur Kwiatkowski Krawczyk Piotrowski Grabowski Nowakowski Pawłowski Michalski
Novák Svoboda Dvořák Černý Procházka Kučera Veselý Horák Němec Pokorný Nagy Kovács Tóth
Szabó Horváth Varga Kiss Molnár Németh Farkas Balogh Papp Takács Juhász Lakatos Mészáros
Oláh Simon Rácz Fekete Szilágyi Török Fehér Balázs Gál Kis Yılmaz Kaya Demir Şahin Çelik
Yıldız Yıldırım Öztürk Aydın Özdemir Arslan Doğan Kılıç Aslan Çetin Kara Koç Kurt Özkan
Şimşek Andersson Johansson Karlsson Nilsson Eriksson Larsson Olsson Persson Svensson Gustafsson
Pettersson Jónsdóttir Sigurðsson Guðmundsson Þórsson Hansen Jensen Nielsen Pedersen Sørensen
Rasmussen Jørgensen Petersen Madsen Kristensen Olsen Thomsen Christiansen Poulsen Johansen
Møller Mortensen Tanaka Suzuki Takahashi Watanabe Itō Yamamoto Nakamura Kobayashi Katō
Sato Wang Zhang Liu Chen Yang Huang Zhao Wu Zhou Xu Sun Ma Zhu Hu Guo Lin He Gao Luo
Trần Lê Phạm Hoàng Huỳnh Phan Vũ Võ Đặng Bùi Đỗ Hồ Ngô Dương Lý Singh Kumar Sharma Gupta
Reddy Iyer Rao Mehta Joshi Chatterjee Okafor Adeyemi Mensah Okonkwo Diallo Traoré Kamara
O'Brien O'Connor Ó_Súilleabháin Mac_Cárthaigh van_Dijk van_der_Berg de_Vries de_Jong
da_Silva dos_Santos Gonçalves Conceição Magalhães Araújo Çakır Lefèvre Gauthier Bérubé
Côté Lévesque Pelletier Bélanger Dubé Girard Roussel Mercier Dupré Mathieu
""".split()
LAST_NAMES = [n.replace("_", " ") for n in LAST_NAMES]

# (city, country) in rank order: rank r (1-based) gets weight 1/(r+2).
CITIES = """
London|United Kingdom
New York|United States
São Paulo|Brazil
Berlin|Germany
Tokyo|Japan
Paris|France
Mumbai|India
Toronto|Canada
Sydney|Australia
Zürich|Switzerland
Madrid|Spain
Chicago|United States
Shanghai|China
Mexico City|Mexico
Singapore|Singapore
Amsterdam|Netherlands
Bengaluru|India
Los Angeles|United States
Seoul|South Korea
Kraków|Poland
Stockholm|Sweden
München|Germany
Barcelona|Spain
Milan|Italy
Dublin|Ireland
Buenos Aires|Argentina
Istanbul|Türkiye
Warsaw|Poland
Melbourne|Australia
San Francisco|United States
Hamburg|Germany
Lagos|Nigeria
Cairo|Egypt
Johannesburg|South Africa
Vienna|Austria
Prague|Czechia
Copenhagen|Denmark
Oslo|Norway
Helsinki|Finland
Lisbon|Portugal
Rome|Italy
Brussels|Belgium
Montréal|Canada
Vancouver|Canada
Boston|United States
Seattle|United States
Austin|United States
Delhi|India
Hyderabad|India
Chennai|India
Pune|India
Beijing|China
Shenzhen|China
Hong Kong|China
Taipei|Taiwan
Osaka|Japan
Bangkok|Thailand
Jakarta|Indonesia
Manila|Philippines
Ho Chi Minh City|Vietnam
Hanoi|Vietnam
Kuala Lumpur|Malaysia
Dubai|United Arab Emirates
Tel Aviv|Israel
Riyadh|Saudi Arabia
Nairobi|Kenya
Accra|Ghana
Casablanca|Morocco
Cape Town|South Africa
Bogotá|Colombia
Medellín|Colombia
Lima|Peru
Santiago|Chile
Rio de Janeiro|Brazil
Brasília|Brazil
Belo Horizonte|Brazil
Curitiba|Brazil
Porto Alegre|Brazil
Malmö|Sweden
Göteborg|Sweden
Reykjavík|Iceland
Frankfurt|Germany
Köln|Germany
Düsseldorf|Germany
Stuttgart|Germany
Leipzig|Germany
Dresden|Germany
Nürnberg|Germany
Hannover|Germany
Bremen|Germany
Manchester|United Kingdom
Birmingham|United Kingdom
Glasgow|United Kingdom
Edinburgh|United Kingdom
Leeds|United Kingdom
Bristol|United Kingdom
Liverpool|United Kingdom
Cardiff|United Kingdom
Belfast|United Kingdom
Lyon|France
Marseille|France
Toulouse|France
Nice|France
Nantes|France
Strasbourg|France
Bordeaux|France
Lille|France
Genève|Switzerland
Basel|Switzerland
Lausanne|Switzerland
Bern|Switzerland
Rotterdam|Netherlands
Utrecht|Netherlands
Eindhoven|Netherlands
The Hague|Netherlands
Antwerp|Belgium
Ghent|Belgium
Liège|Belgium
Łódź|Poland
Wrocław|Poland
Poznań|Poland
Gdańsk|Poland
Szczecin|Poland
Katowice|Poland
Brno|Czechia
Ostrava|Czechia
Bratislava|Slovakia
Košice|Slovakia
Budapest|Hungary
Debrecen|Hungary
Bucharest|Romania
Cluj-Napoca|Romania
Timișoara|Romania
Sofia|Bulgaria
Plovdiv|Bulgaria
Belgrade|Serbia
Zagreb|Croatia
Ljubljana|Slovenia
Sarajevo|Bosnia and Herzegovina
Athens|Greece
Thessaloniki|Greece
Ankara|Türkiye
Izmir|Türkiye
Valencia|Spain
Sevilla|Spain
Zaragoza|Spain
Málaga|Spain
Bilbao|Spain
Palma|Spain
Las Palmas|Spain
Córdoba|Spain
Porto|Portugal
Braga|Portugal
Coimbra|Portugal
Naples|Italy
Turin|Italy
Florence|Italy
Bologna|Italy
Venice|Italy
Genoa|Italy
Palermo|Italy
Bari|Italy
Salzburg|Austria
Graz|Austria
Linz|Austria
Innsbruck|Austria
Aarhus|Denmark
Odense|Denmark
Aalborg|Denmark
Bergen|Norway
Trondheim|Norway
Stavanger|Norway
Tromsø|Norway
Uppsala|Sweden
Västerås|Sweden
Örebro|Sweden
Linköping|Sweden
Espoo|Finland
Tampere|Finland
Turku|Finland
Oulu|Finland
Tallinn|Estonia
Tartu|Estonia
Riga|Latvia
Vilnius|Lithuania
Kaunas|Lithuania
Kyiv|Ukraine
Lviv|Ukraine
Kharkiv|Ukraine
Odesa|Ukraine
Chișinău|Moldova
Tbilisi|Georgia
Yerevan|Armenia
Baku|Azerbaijan
Almaty|Kazakhstan
Tashkent|Uzbekistan
Karachi|Pakistan
Lahore|Pakistan
Dhaka|Bangladesh
Colombo|Sri Lanka
Kathmandu|Nepal
Kolkata|India
Ahmedabad|India
Jaipur|India
Kochi|India
Chandigarh|India
Guangzhou|China
Chengdu|China
Hangzhou|China
Wuhan|China
Nanjing|China
Xi'an|China
Chongqing|China
Tianjin|China
Suzhou|China
Yokohama|Japan
Nagoya|Japan
Sapporo|Japan
Fukuoka|Japan
Kyoto|Japan
Kobe|Japan
Busan|South Korea
Incheon|South Korea
Daegu|South Korea
Kaohsiung|Taiwan
Taichung|Taiwan
Cebu|Philippines
Davao|Philippines
Surabaya|Indonesia
Bandung|Indonesia
Denpasar|Indonesia
Penang|Malaysia
Chiang Mai|Thailand
Phnom Penh|Cambodia
Yangon|Myanmar
Abu Dhabi|United Arab Emirates
Doha|Qatar
Kuwait City|Kuwait
Muscat|Oman
Amman|Jordan
Beirut|Lebanon
Jerusalem|Israel
Haifa|Israel
Tunis|Tunisia
Algiers|Algeria
Rabat|Morocco
Marrakesh|Morocco
Addis Ababa|Ethiopia
Kampala|Uganda
Kigali|Rwanda
Dar es Salaam|Tanzania
Lusaka|Zambia
Harare|Zimbabwe
Luanda|Angola
Kinshasa|DR Congo
Dakar|Senegal
Abidjan|Côte d'Ivoire
Abuja|Nigeria
Durban|South Africa
Pretoria|South Africa
Auckland|New Zealand
Wellington|New Zealand
Christchurch|New Zealand
Brisbane|Australia
Perth|Australia
Adelaide|Australia
Canberra|Australia
Hobart|Australia
Calgary|Canada
Ottawa|Canada
Edmonton|Canada
Winnipeg|Canada
Québec|Canada
Halifax|Canada
Philadelphia|United States
Houston|United States
Dallas|United States
Phoenix|United States
San Diego|United States
San Jose|United States
Denver|United States
Atlanta|United States
Miami|United States
Washington|United States
Minneapolis|United States
Portland|United States
Detroit|United States
Nashville|United States
Pittsburgh|United States
Salt Lake City|United States
Raleigh|United States
Honolulu|United States
Anchorage|United States
Guadalajara|Mexico
Monterrey|Mexico
Puebla|Mexico
Mérida|Mexico
Tijuana|Mexico
Guatemala City|Guatemala
San José|Costa Rica
Panama City|Panama
Havana|Cuba
Santo Domingo|Dominican Republic
San Juan|Puerto Rico
Caracas|Venezuela
Quito|Ecuador
Guayaquil|Ecuador
La Paz|Bolivia
Asunción|Paraguay
Montevideo|Uruguay
Valparaíso|Chile
Rosario|Argentina
Mendoza|Argentina
Recife|Brazil
Salvador|Brazil
Fortaleza|Brazil
Manaus|Brazil
Belém|Brazil
Florianópolis|Brazil
""".strip().splitlines()

# Rare pairs, placed at fixed emp_id residues (see module doc). RARE_CITY is searched by
# the rare-filter scenario; none of the common cities contains it as a substring.
RARE = [
    ("Ittoqqortoormiit", "Greenland"),
    ("Longyearbyen", "Svalbard"),
    ("Adamstown", "Pitcairn Islands"),
    ("Edinburgh of the Seven Seas", "Tristan da Cunha"),
    ("Ny-Ålesund", "Svalbard"),
]
RARE_CITY = RARE[0][0]
RARE_RESIDUES = {4242 + 20000 * k: k for k in range(len(RARE))}

DOB_FIRST = dt.date(1950, 1, 1)
DOB_LAST = dt.date(2006, 12, 31)

RUST_COLUMNS = ("emp_id", "id", "emp_name", "city", "country", "emp_dob", "city_folded", "country_folded")
PEER_COLUMNS = ("id", "emp_id", "emp_name", "city", "country", "emp_dob")


def _pairs():
    pairs = [tuple(line.split("|")) for line in CITIES]
    assert len(set(pairs)) == len(pairs), "duplicate (city, country)"
    return pairs


PAIRS = _pairs()
# (city, country, city_folded, country_folded); identical to the server's to_lowercase for
# these strings (no İ, no Greek capital sigma, nothing whose lowering differs by language).
PAIRS_F = [(c, k, c.lower(), k.lower()) for c, k in PAIRS]
RARE_F = [(c, k, c.lower(), k.lower()) for c, k in RARE]
_cum = []
_acc = 0.0
for _r in range(1, len(PAIRS) + 1):
    _acc += 1.0 / (_r + 2)
    _cum.append(_acc)
CUM_WEIGHTS = _cum
DAYS = [(DOB_FIRST + dt.timedelta(days=d)).isoformat() for d in range((DOB_LAST - DOB_FIRST).days + 1)]


def rows(start: int, count: int, seed: int = DEFAULT_SEED):
    """Yield batches (lists) of tuples (emp_id, uuid.UUID, name, city, country, dob, city_f, country_f)."""
    rng = random.Random(f"employee-bench:{seed}:{start}")
    emp_id = start
    end = start + count
    while emp_id < end:
        k = min(BATCH, end - emp_id)
        firsts = rng.choices(FIRST_NAMES, k=k)
        lasts = rng.choices(LAST_NAMES, k=k)
        places = rng.choices(PAIRS_F, cum_weights=CUM_WEIGHTS, k=k)
        dobs = rng.choices(DAYS, k=k)
        getrandbits = rng.getrandbits
        batch = []
        for i in range(k):
            eid = emp_id + i
            place = places[i]
            r = RARE_RESIDUES.get(eid % 100_000)
            if r is not None:
                place = RARE_F[r]
            u = uuid.UUID(int=getrandbits(128), version=4)
            batch.append((eid, u, firsts[i] + " " + lasts[i], place[0], place[1], dobs[i], place[2], place[3]))
        yield batch
        emp_id += k


def write_csv(out, start: int, count: int, seed: int, columns: str) -> None:
    w = csv.writer(out, lineterminator="\n")
    if columns == "api":
        # The import format of `employee-api employees import` (header row included).
        w.writerow(("emp_id", "emp_name", "city", "country", "emp_dob"))
    for batch in rows(start, count, seed):
        if columns == "api":
            w.writerows((r[0], r[2], r[3], r[4], r[5]) for r in batch)
        elif columns == "peer":
            w.writerows((str(r[1]), r[0], r[2], r[3], r[4], r[5]) for r in batch)
        else:
            w.writerows((r[0], str(r[1]), r[2], r[3], r[4], r[5], r[6], r[7]) for r in batch)


def first_row(n: int, seed: int):
    """Row 1 of the n-row base set (the RNG draws per batch, so generate a whole first batch)."""
    return next(rows(1, n, seed))[0]


# ---------------------------------------------------------------- PostgreSQL (psql)

def psql(url: str, sql: str) -> str:
    out = subprocess.run(
        ["psql", url, "-X", "-v", "ON_ERROR_STOP=1", "-Atq", "-c", sql],
        check=True, capture_output=True, text=True,
    )
    return out.stdout.strip()


def pg_copy(url: str, table: str, columns, start: int, count: int, seed: int, peer: bool,
            bulk: bool = False) -> None:
    """COPY the rows into `table` through psql. With bulk=True (the table must be empty and
    unused) everything runs in one transaction that drops the table's secondary indexes (those
    not backing a constraint), COPYs with FREEZE, then rebuilds the indexes from their own
    definitions: a sorted index build is several times faster than 1M index inserts."""
    cmds = []
    if bulk:
        # indexname (quoted, schema-qualified) and its full definition, for non-constraint indexes
        q = (f"SELECT i.indexrelid::regclass::text || chr(9) || pg_get_indexdef(i.indexrelid) FROM pg_index i "
             f"WHERE i.indrelid = '{table}'::regclass AND NOT EXISTS "
             f"(SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid) ORDER BY 1")
        indexes = [line.split("\t", 1) for line in psql(url, q).splitlines() if line]
        cmds += ["SET maintenance_work_mem = '512MB'", f"TRUNCATE {table}"]
        cmds += [f"DROP INDEX {name}" for name, _ in indexes]
        copy_opts = "FORMAT csv, FREEZE"
    else:
        indexes = []
        copy_opts = "FORMAT csv"
    cmds.append(f"\\copy {table} ({', '.join(columns)}) FROM pstdin WITH ({copy_opts})")
    cmds += [definition for _, definition in indexes]
    cmd = ["psql", url, "-X", "-q", "-v", "ON_ERROR_STOP=1", "--single-transaction"]
    for c in cmds:
        cmd += ["-c", c]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
    out = io.TextIOWrapper(proc.stdin, encoding="utf-8", newline="", write_through=False)
    try:
        write_csv(out, start, count, seed, "peer" if peer else "rust")
        out.close()
    except BrokenPipeError:
        pass
    if proc.wait() != 0:
        sys.exit(f"gen_data: psql \\copy into {table} failed")


def load_postgres(args, table: str, peer: bool) -> None:
    url = args.target
    cols = PEER_COLUMNS if peer else RUST_COLUMNS
    if args.start is not None:
        t0 = time.monotonic()
        pg_copy(url, table, cols, args.start, args.count, args.seed, peer)
        report(args.count, time.monotonic() - t0, f"{table} block {args.start}..{args.start + args.count - 1}")
        return
    n = args.n
    deleted = psql(url, f"WITH d AS (DELETE FROM {table} WHERE emp_id > {n} RETURNING 1) SELECT count(*) FROM d")
    if deleted != "0":
        print(f"gen_data: removed {deleted} rows with emp_id > {n} left by an earlier run", file=sys.stderr)
    have = int(psql(url, f"SELECT count(*) FROM {table}"))
    if have:
        fr = first_row(n, args.seed)
        same = psql(url, f"SELECT count(*) FROM {table} WHERE emp_id = 1 AND id = '{fr[1]}' "
                         f"AND (SELECT max(emp_id) FROM {table}) = {n}")
        if have == n and same == "1":
            print(f"gen_data: {table} already holds the {n} rows of this dataset: load skipped", file=sys.stderr)
            print("LOAD_SKIPPED")
            return
        if not args.truncate:
            print(f"gen_data: {table} holds {have} other rows; refusing to load (recreate the database "
                  "or pass --truncate)", file=sys.stderr)
            sys.exit(3)
        psql(url, f"TRUNCATE {table}")
    t0 = time.monotonic()
    pg_copy(url, table, cols, 1, n, args.seed, peer, bulk=True)
    elapsed = time.monotonic() - t0
    report(n, elapsed, f"{table} COPY FREEZE + index build")
    t1 = time.monotonic()
    psql(url, f"VACUUM (ANALYZE) {table}")
    print(f"gen_data: VACUUM ANALYZE {table}: {time.monotonic() - t1:.1f} s", file=sys.stderr)


# ---------------------------------------------------------------- SQLite (python sqlite3)

SQLITE_INSERT = f"INSERT INTO employees ({', '.join(RUST_COLUMNS)}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"


def sqlite_insert(con, start: int, count: int, seed: int) -> None:
    for batch in rows(start, count, seed):
        con.executemany(SQLITE_INSERT, [(r[0], r[1].bytes, r[2], r[3], r[4], r[5], r[6], r[7]) for r in batch])


def sqlite_bulk_plan(con):
    """The fast path for an empty table: drop the employees triggers and secondary indexes,
    insert, recreate them from their own SQL, then redo what the triggers would have done.
    Only taken when every trigger is one whose effect can be redone in bulk: maintaining an
    external-content FTS5 table over employees ('rebuild'), the employee_count row (set to
    count(*)) or the per-place counts in employee_places (recomputed with GROUP BY). Returns
    None (use the plain per-row path) otherwise."""
    trig = con.execute("SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'employees'").fetchall()
    idx = con.execute("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'employees' "
                      "AND sql IS NOT NULL").fetchall()
    fts = [name for (name, sql) in con.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'table' AND sql LIKE 'CREATE VIRTUAL TABLE%'")
        if re.search(r"content\s*=\s*'?\"?employees\b", sql or "", re.I)]
    has_count = con.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'employee_count'").fetchone()
    has_places = con.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'employee_places'").fetchone()
    redoable = set(fts) | ({"employee_count"} if has_count else set()) | ({"employee_places"} if has_places else set())
    for name, sql in trig:
        body = sql.split(" BEGIN", 1)[-1]
        targets = set(re.findall(r"\b(?:INSERT\s+INTO|UPDATE|DELETE\s+FROM)\s+\"?(\w+)", body, re.I))
        if not targets or not targets <= redoable:
            print(f"gen_data: trigger {name} has an effect the bulk path cannot redo: per-row load", file=sys.stderr)
            return None
    return trig, idx, fts, bool(has_count), bool(has_places)


def load_sqlite(args) -> None:
    if not os.path.exists(args.target):
        sys.exit(f"gen_data: {args.target} does not exist: run `employee-api migrate` first")
    con = sqlite3.connect(args.target, isolation_level=None, timeout=60)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=OFF")      # this connection only: the load is repeatable
    con.execute("PRAGMA cache_size=-524288")   # 512 MiB page cache for the index inserts
    con.execute("PRAGMA temp_store=MEMORY")

    if args.start is not None:  # a block appended to a live table: the triggers must fire per row
        t0 = time.monotonic()
        con.execute("BEGIN IMMEDIATE")
        sqlite_insert(con, args.start, args.count, args.seed)
        con.execute("COMMIT")
        report(args.count, time.monotonic() - t0, f"employees block {args.start}..{args.start + args.count - 1}")
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return
    n = args.n
    con.execute("BEGIN IMMEDIATE")
    deleted = con.execute("DELETE FROM employees WHERE emp_id > ?", (n,)).rowcount
    con.execute("COMMIT")
    if deleted:
        print(f"gen_data: removed {deleted} rows with emp_id > {n} left by an earlier run", file=sys.stderr)
    have = con.execute("SELECT count(*) FROM employees").fetchone()[0]
    if have:
        fr = first_row(n, args.seed)
        same = con.execute(
            "SELECT count(*) FROM employees WHERE emp_id = 1 AND id = ? AND (SELECT max(emp_id) FROM employees) = ?",
            (fr[1].bytes, n)).fetchone()[0]
        if have == n and same == 1:
            print(f"gen_data: employees already holds the {n} rows of this dataset: load skipped", file=sys.stderr)
            print("LOAD_SKIPPED")
            return
        print(f"gen_data: employees holds {have} other rows; refusing to load (delete the file)", file=sys.stderr)
        sys.exit(3)
    t0 = time.monotonic()
    plan = sqlite_bulk_plan(con)
    con.execute("BEGIN IMMEDIATE")
    if plan is None:
        sqlite_insert(con, 1, n, args.seed)
        how = "executemany (per-row triggers)"
    else:
        trig, idx, fts, has_count, has_places = plan
        for name, _ in trig:
            con.execute(f'DROP TRIGGER "{name}"')
        for name, _ in idx:
            con.execute(f'DROP INDEX "{name}"')
        sqlite_insert(con, 1, n, args.seed)
        for _, sql in idx:
            con.execute(sql)
        for _, sql in trig:
            con.execute(sql)
        for name in fts:
            con.execute(f"INSERT INTO \"{name}\" (\"{name}\") VALUES ('rebuild')")
        if has_count:
            con.execute("UPDATE employee_count SET n = (SELECT count(*) FROM employees)")
        if has_places:
            con.execute("DELETE FROM employee_places")
            con.execute("INSERT INTO employee_places (city_folded, country_folded, n) "
                        "SELECT city_folded, country_folded, count(*) FROM employees GROUP BY 1, 2")
        how = "executemany, indexes/FTS built after"
    con.execute("COMMIT")
    elapsed = time.monotonic() - t0
    report(n, elapsed, f"employees {how}")
    t1 = time.monotonic()
    con.execute("ANALYZE")
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    print(f"gen_data: ANALYZE + checkpoint: {time.monotonic() - t1:.1f} s", file=sys.stderr)
    con.close()


def report(n: int, seconds: float, what: str) -> None:
    rate = n / seconds if seconds > 0 else float("inf")
    print(f"gen_data: {what}: {n} rows in {seconds:.1f} s = {rate:,.0f} rows/s", file=sys.stderr)
    print(f"LOAD_RATE {rate:.0f} {n} {seconds:.2f}")


def stats(n: int, seed: int) -> None:
    from collections import Counter
    cities = Counter()
    t0 = time.monotonic()
    for batch in rows(1, n, seed):
        cities.update(r[3] for r in batch)
    gen = time.monotonic() - t0
    print(f"{n} rows generated in {gen:.1f} s ({n / gen:,.0f} rows/s); {len(cities)} distinct cities")
    for c, k in cities.most_common(10):
        print(f"  {c:30s} {k:8d}  {100 * k / n:5.2f}%")
    print("  ...")
    for c, _ in RARE:
        print(f"  {c:30s} {cities[c]:8d}  (rare)")
    least = min((k, c) for c, k in cities.items() if c not in dict(RARE))
    print(f"  least common non-rare: {least[1]} {least[0]}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("command", choices=["csv", "load", "stats"])
    ap.add_argument("--n", type=int, default=int(os.environ.get("N", 1_000_000)))
    ap.add_argument("--start", type=int, help="append the block start..start+count-1 instead of the base set")
    ap.add_argument("--count", type=int)
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED)
    ap.add_argument("--columns", choices=["rust", "peer", "api"], default="rust")
    ap.add_argument("--backend", choices=["sqlite", "postgres", "peer"])
    ap.add_argument("--target", help="SQLite file path, or a postgres:// URL")
    ap.add_argument("--truncate", action="store_true", help="peer only: TRUNCATE a table holding other rows")
    args = ap.parse_args()
    if args.start is not None and args.count is None:
        ap.error("--start needs --count")
    if args.command == "csv":
        start = args.start if args.start is not None else 1
        count = args.count if args.count is not None else args.n
        out = io.TextIOWrapper(sys.stdout.buffer, encoding="utf-8", newline="")
        write_csv(out, start, count, args.seed, args.columns)
        out.flush()
    elif args.command == "stats":
        stats(args.n, args.seed)
    else:
        if not args.backend or not args.target:
            ap.error("load needs --backend and --target")
        if args.truncate and args.backend != "peer":
            ap.error("--truncate is only for the peer's table")
        if args.backend == "sqlite":
            load_sqlite(args)
        else:
            load_postgres(args, "employee" if args.backend == "peer" else "employees", args.backend == "peer")


if __name__ == "__main__":
    main()
