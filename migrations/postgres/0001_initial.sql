-- Initial schema (PostgreSQL).
--
-- Text columns use the "C" collation so that sorting is by code point, exactly as SQLite's
-- BINARY collation sorts: both backends return pages in the same order.
-- `city_folded` / `country_folded` hold the Unicode-lower-cased copy that the substring filters
-- search, so matching never depends on the database's collation or locale.

CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE TABLE users (
    -- Identity values are never reused, so a token whose `sub` names a deleted user can never
    -- become valid for someone who later registers.
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- Stored lower-cased by the application; the UNIQUE constraint is therefore case-insensitive.
    username      TEXT COLLATE "C" NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    is_admin      BOOLEAN NOT NULL DEFAULT FALSE,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE employees (
    emp_id         BIGINT PRIMARY KEY CHECK (emp_id BETWEEN 1 AND 9007199254740991),
    id             UUID NOT NULL UNIQUE,
    emp_name       TEXT COLLATE "C" NOT NULL,
    city           TEXT COLLATE "C" NOT NULL,
    country        TEXT COLLATE "C" NOT NULL,
    emp_dob        DATE NOT NULL,
    city_folded    TEXT COLLATE "C" NOT NULL,
    country_folded TEXT COLLATE "C" NOT NULL
);

-- One index per sort key, with emp_id as the tie-breaker, so every sorted page (offset or
-- keyset) is an index range scan in either direction.
CREATE INDEX employees_emp_name_idx ON employees (emp_name, emp_id);
CREATE INDEX employees_emp_dob_idx  ON employees (emp_dob, emp_id);
CREATE INDEX employees_city_idx     ON employees (city, emp_id);
CREATE INDEX employees_country_idx  ON employees (country, emp_id);

-- Substring filters (`LIKE '%x%'` on the folded copies) are served by trigram indexes.
CREATE INDEX employees_city_trgm_idx    ON employees USING gin (city_folded gin_trgm_ops);
CREATE INDEX employees_country_trgm_idx ON employees USING gin (country_folded gin_trgm_ops);

-- An exact row count kept by statement-level triggers, so the unfiltered X-Total-Count is one
-- row read instead of a scan of the whole table. Statement-level triggers with transition
-- tables also cover COPY and multi-row INSERT at the cost of one update per statement.
CREATE TABLE employee_count (
    singleton BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (singleton),
    n         BIGINT NOT NULL
);
INSERT INTO employee_count (singleton, n) VALUES (TRUE, 0);

CREATE FUNCTION employee_count_ins() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE employee_count SET n = n + (SELECT count(*) FROM new_rows);
    RETURN NULL;
END $$;

CREATE FUNCTION employee_count_del() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE employee_count SET n = n - (SELECT count(*) FROM old_rows);
    RETURN NULL;
END $$;

CREATE TRIGGER employees_count_ins AFTER INSERT ON employees
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION employee_count_ins();
CREATE TRIGGER employees_count_del AFTER DELETE ON employees
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION employee_count_del();
