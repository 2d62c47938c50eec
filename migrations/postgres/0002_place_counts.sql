-- Exact, cheap X-Total-Count for the city/country filters.
--
-- A filter is a substring test on the folded city and/or country, so the number of matching
-- employees is the sum, over the distinct (city, country) pairs that pass the test, of how many
-- employees hold each pair. Real staff data has a few hundred or thousand distinct places, so
-- counting "london" reads those few rows here instead of the tens of thousands of heap rows of
-- the employees that live there. Kept exact by the statement-level triggers below, in the
-- same transaction as the write.
CREATE TABLE employee_places (
    city_folded    TEXT COLLATE "C" NOT NULL,
    country_folded TEXT COLLATE "C" NOT NULL,
    n              BIGINT NOT NULL,
    PRIMARY KEY (city_folded, country_folded)
);

INSERT INTO employee_places (city_folded, country_folded, n)
SELECT city_folded, country_folded, count(*) FROM employees GROUP BY city_folded, country_folded;

-- Each trigger applies per-pair deltas in one upsert. Rows are locked in (city, country)
-- order, so two writers touching the same pairs (a PATCH moving London -> Paris beside one
-- moving Paris -> London) queue instead of deadlocking. Pairs left at zero are removed.
CREATE FUNCTION employee_places_ins() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO employee_places AS p (city_folded, country_folded, n)
    SELECT city_folded, country_folded, count(*) FROM new_rows GROUP BY 1, 2 ORDER BY 1, 2
    ON CONFLICT (city_folded, country_folded) DO UPDATE SET n = p.n + excluded.n;
    RETURN NULL;
END $$;

CREATE FUNCTION employee_places_del() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO employee_places AS p (city_folded, country_folded, n)
    SELECT city_folded, country_folded, -count(*) FROM old_rows GROUP BY 1, 2 ORDER BY 1, 2
    ON CONFLICT (city_folded, country_folded) DO UPDATE SET n = p.n + excluded.n;
    DELETE FROM employee_places p USING old_rows o
    WHERE p.city_folded = o.city_folded AND p.country_folded = o.country_folded AND p.n = 0;
    RETURN NULL;
END $$;

CREATE FUNCTION employee_places_upd() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO employee_places AS p (city_folded, country_folded, n)
    SELECT c, k, sum(n) FROM (
        SELECT city_folded AS c, country_folded AS k, -1 AS n FROM old_rows
        UNION ALL
        SELECT city_folded, country_folded, 1 FROM new_rows
    ) moved
    GROUP BY 1, 2 HAVING sum(n) <> 0 ORDER BY 1, 2
    ON CONFLICT (city_folded, country_folded) DO UPDATE SET n = p.n + excluded.n;
    DELETE FROM employee_places p USING old_rows o
    WHERE p.city_folded = o.city_folded AND p.country_folded = o.country_folded AND p.n = 0;
    RETURN NULL;
END $$;

CREATE TRIGGER employees_places_ins AFTER INSERT ON employees
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION employee_places_ins();
CREATE TRIGGER employees_places_del AFTER DELETE ON employees
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION employee_places_del();
CREATE TRIGGER employees_places_upd AFTER UPDATE ON employees
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION employee_places_upd();

-- A filter that matches few employees is answered through the places: the matching pairs from
-- employee_places, then their employees by this index (see `Db::list_page`).
CREATE INDEX employees_place_idx ON employees (city_folded, country_folded);
