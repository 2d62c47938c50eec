#!/usr/bin/env python3
"""Deterministic, realistic employee rows for the benchmark suite. It only generates rows:
loading them is the product's job (`employee-api employees import`, driven by bench.py).

Every row is a pure function of (seed, first emp_id of the block, position), so the same
command always produces the same rows:

- emp_id: start .. start+count-1 (the base set is 1..N)
- emp_name: "<first> <last>" from ~200 first and ~300 last names (some non-ASCII)
- (city, country): Zipf-like over ~320 pairs (rank r has weight 1/(r+2)); the top city
  ("London") holds about 6.8% of the rows, the least common about 0.06%. Five rare pairs
  are placed deterministically at emp_id % 100000 in {4242, 24242, 44242, 64242, 84242}:
  exactly N/100000 rows each (10 in 1,000,000). RARE_CITY ("Ittoqqortoormiit") is the
  one the rare-filter scenario searches.
- emp_dob: uniform over 1950-01-01 .. 2006-12-31
- id (peer format only): a version-4 UUID drawn from the seeded RNG. Our server assigns its
  own `id` on import, so the import format has none; the bits are drawn in both formats so
  that a given emp_id has the same name, place and date in both.

Usage:
  gen_data.py csv   --n N [--start S --count C] [--format import|peer] [--output FILE]
  gen_data.py stats --n N [--seed SEED]

`csv --format import` (the default) writes the import format of `employee-api employees
import`: RFC 4180 with CRLF line ends and the header emp_id,emp_name,city,country,emp_dob.
`--format peer` writes id,emp_id,emp_name,city,country,emp_dob without a header, for a
PostgreSQL COPY into the original FastAPI service's own table. Without --start/--count the
rows are the base set 1..N; `--start S --count C` gives the block S..S+C-1 (the rows the
PATCH/DELETE scenarios work on).
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import io
import os
import random
import sys
import time
import uuid

DEFAULT_SEED = 20261127
BATCH = 20_000
# Bump when a change here changes the rows a given (N, seed) produces: bench.py keeps an
# imported dataset only while its recorded version, N and seed match.
DATASET_VERSION = 1

IMPORT_HEADER = ("emp_id", "emp_name", "city", "country", "emp_dob")
PEER_COLUMNS = ("id", "emp_id", "emp_name", "city", "country", "emp_dob")

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


def _pairs():
    pairs = [tuple(line.split("|")) for line in CITIES]
    assert len(set(pairs)) == len(pairs), "duplicate (city, country)"
    return pairs


PAIRS = _pairs()
_cum = []
_acc = 0.0
for _r in range(1, len(PAIRS) + 1):
    _acc += 1.0 / (_r + 2)
    _cum.append(_acc)
CUM_WEIGHTS = _cum
DAYS = [(DOB_FIRST + dt.timedelta(days=d)).isoformat() for d in range((DOB_LAST - DOB_FIRST).days + 1)]


def rows(start: int, count: int, seed: int = DEFAULT_SEED):
    """Yield batches (lists) of tuples (emp_id, uuid.UUID, emp_name, city, country, emp_dob).

    The draws are exactly those of the generator's earlier versions (which also produced
    folded columns for a loader of their own), so the rows are unchanged."""
    rng = random.Random(f"employee-bench:{seed}:{start}")
    emp_id = start
    end = start + count
    while emp_id < end:
        k = min(BATCH, end - emp_id)
        firsts = rng.choices(FIRST_NAMES, k=k)
        lasts = rng.choices(LAST_NAMES, k=k)
        places = rng.choices(PAIRS, cum_weights=CUM_WEIGHTS, k=k)
        dobs = rng.choices(DAYS, k=k)
        getrandbits = rng.getrandbits
        batch = []
        for i in range(k):
            eid = emp_id + i
            place = places[i]
            r = RARE_RESIDUES.get(eid % 100_000)
            if r is not None:
                place = RARE[r]
            u = uuid.UUID(int=getrandbits(128), version=4)
            batch.append((eid, u, firsts[i] + " " + lasts[i], place[0], place[1], dobs[i]))
        yield batch
        emp_id += k


def write_csv(out, start: int, count: int, seed: int = DEFAULT_SEED, fmt: str = "import") -> None:
    """Write rows start..start+count-1 to the text stream `out` (opened with newline="")."""
    if fmt == "import":
        w = csv.writer(out, lineterminator="\r\n")
        w.writerow(IMPORT_HEADER)
        for batch in rows(start, count, seed):
            w.writerows((r[0], r[2], r[3], r[4], r[5]) for r in batch)
    elif fmt == "peer":
        w = csv.writer(out, lineterminator="\n")
        for batch in rows(start, count, seed):
            w.writerows((str(r[1]), r[0], r[2], r[3], r[4], r[5]) for r in batch)
    else:
        raise ValueError(f"unknown format {fmt!r}")


def write_csv_file(path: str, start: int, count: int, seed: int = DEFAULT_SEED, fmt: str = "import") -> None:
    """write_csv into a file, atomically (a partial file never has the final name)."""
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8", newline="") as f:
        write_csv(f, start, count, seed, fmt)
    os.replace(tmp, path)


def sample_ids(n: int):
    """A few emp_ids of the base set 1..n whose rows are cheap to regenerate (all in the first
    batch) and that include a rare place: enough to tell one (N, seed, version) from another."""
    return [i for i in (1, 2, 3, 999, 4242, 12345, BATCH) if i <= n]


def sample_rows(n: int, seed: int = DEFAULT_SEED):
    """{emp_id: (emp_name, city, country, emp_dob)} for sample_ids(n), as the base set has them."""
    want = set(sample_ids(n))
    first = next(rows(1, n, seed))
    return {r[0]: (r[2], r[3], r[4], r[5]) for r in first if r[0] in want}


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
    print(f"  least common non-rare: {least[1]} {least[0]} ({100 * least[0] / n:.3f}%)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("command", choices=["csv", "stats"])
    ap.add_argument("--n", type=int, default=int(os.environ.get("N", 1_000_000)),
                    help="rows in the base set (default: $N or 1000000)")
    ap.add_argument("--start", type=int, help="first emp_id of a block (with --count) instead of the base set")
    ap.add_argument("--count", type=int)
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED)
    ap.add_argument("--format", choices=["import", "peer"], default="import",
                    help="import: employee-api's CSV import format (default); peer: the original service's COPY rows")
    ap.add_argument("--output", "-o", help="write to this file instead of standard output")
    args = ap.parse_args()
    if (args.start is None) != (args.count is None):
        ap.error("--start and --count go together")
    if args.command == "stats":
        stats(args.n, args.seed)
        return
    start = args.start if args.start is not None else 1
    count = args.count if args.count is not None else args.n
    if args.output:
        write_csv_file(args.output, start, count, args.seed, args.format)
        return
    out = io.TextIOWrapper(sys.stdout.buffer, encoding="utf-8", newline="")
    try:
        write_csv(out, start, count, args.seed, args.format)
        out.flush()
    except BrokenPipeError:  # e.g. `| head`
        sys.stderr.close()
        sys.exit(0)


if __name__ == "__main__":
    main()
