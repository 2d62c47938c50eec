-- Initial schema (SQLite). Same logical schema as migrations/postgres.
--
-- SQLite's BINARY collation sorts by code point, as the "C" collation does on PostgreSQL.
-- `city_folded` / `country_folded` hold the Unicode-lower-cased copy the substring filters
-- search (SQLite's own lower()/LIKE fold ASCII only).

CREATE TABLE users (
    -- AUTOINCREMENT: ids are never reused, so an old token cannot name a newer user.
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    -- Stored lower-cased by the application; UNIQUE is therefore case-insensitive.
    username      TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    is_admin      INTEGER NOT NULL DEFAULT 0 CHECK (is_admin IN (0, 1)),
    created_at    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

-- emp_id is the rowid (INTEGER PRIMARY KEY), which the FTS index below refers to.
CREATE TABLE employees (
    emp_id         INTEGER PRIMARY KEY CHECK (emp_id BETWEEN 1 AND 9007199254740991),
    id             BLOB NOT NULL UNIQUE,
    emp_name       TEXT NOT NULL,
    city           TEXT NOT NULL,
    country        TEXT NOT NULL,
    emp_dob        TEXT NOT NULL,
    city_folded    TEXT NOT NULL,
    country_folded TEXT NOT NULL
);

CREATE INDEX employees_emp_name_idx ON employees (emp_name, emp_id);
CREATE INDEX employees_emp_dob_idx  ON employees (emp_dob, emp_id);
CREATE INDEX employees_city_idx     ON employees (city, emp_id);
CREATE INDEX employees_country_idx  ON employees (country, emp_id);

-- Substring filters of three or more characters are answered by an FTS5 trigram index over
-- the folded copies (external content: the text lives only in `employees`). The tokenizer is
-- case-sensitive because the application has already folded both the data and the query.
CREATE VIRTUAL TABLE employees_fts USING fts5(
    city_folded, country_folded,
    content = 'employees', content_rowid = 'emp_id',
    tokenize = 'trigram case_sensitive 1'
);

CREATE TRIGGER employees_fts_ins AFTER INSERT ON employees BEGIN
    INSERT INTO employees_fts (rowid, city_folded, country_folded)
    VALUES (new.emp_id, new.city_folded, new.country_folded);
END;
CREATE TRIGGER employees_fts_del AFTER DELETE ON employees BEGIN
    INSERT INTO employees_fts (employees_fts, rowid, city_folded, country_folded)
    VALUES ('delete', old.emp_id, old.city_folded, old.country_folded);
END;
CREATE TRIGGER employees_fts_upd AFTER UPDATE OF city_folded, country_folded ON employees BEGIN
    INSERT INTO employees_fts (employees_fts, rowid, city_folded, country_folded)
    VALUES ('delete', old.emp_id, old.city_folded, old.country_folded);
    INSERT INTO employees_fts (rowid, city_folded, country_folded)
    VALUES (new.emp_id, new.city_folded, new.country_folded);
END;

-- Exact row count for the unfiltered X-Total-Count (one row read instead of a table scan).
CREATE TABLE employee_count (
    singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
    n         INTEGER NOT NULL
);
INSERT INTO employee_count (singleton, n) VALUES (1, 0);

CREATE TRIGGER employees_count_ins AFTER INSERT ON employees BEGIN
    UPDATE employee_count SET n = n + 1;
END;
CREATE TRIGGER employees_count_del AFTER DELETE ON employees BEGIN
    UPDATE employee_count SET n = n - 1;
END;
