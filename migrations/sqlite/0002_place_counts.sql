-- Exact, cheap X-Total-Count for the city/country filters.
--
-- A filter is a substring test on the folded city and/or country, so the number of matching
-- employees is the sum, over the distinct (city, country) pairs that pass the test, of how many
-- employees hold each pair. Real staff data has a few hundred or thousand distinct places, so
-- counting "london" reads those few rows here instead of the tens of thousands of index
-- entries of the employees that live there. Kept exact by the triggers below, in the same
-- transaction as the write.
--
-- The same table answers rare filters (with employees_place_idx below), which replaces the
-- FTS5 trigram index of 0001 (dropped at the end).
CREATE TABLE employee_places (
    city_folded    TEXT NOT NULL,
    country_folded TEXT NOT NULL,
    n              INTEGER NOT NULL CHECK (n > 0),
    PRIMARY KEY (city_folded, country_folded)
) WITHOUT ROWID;

INSERT INTO employee_places (city_folded, country_folded, n)
SELECT city_folded, country_folded, count(*) FROM employees GROUP BY city_folded, country_folded;

CREATE TRIGGER employees_places_ins AFTER INSERT ON employees BEGIN
    INSERT INTO employee_places (city_folded, country_folded, n)
    VALUES (new.city_folded, new.country_folded, 1)
    ON CONFLICT (city_folded, country_folded) DO UPDATE SET n = n + 1;
END;

-- A pair's last employee removes its row (so the table holds only places in use).
CREATE TRIGGER employees_places_del AFTER DELETE ON employees BEGIN
    DELETE FROM employee_places
    WHERE city_folded = old.city_folded AND country_folded = old.country_folded AND n = 1;
    UPDATE employee_places SET n = n - 1
    WHERE city_folded = old.city_folded AND country_folded = old.country_folded;
END;

CREATE TRIGGER employees_places_upd AFTER UPDATE OF city_folded, country_folded ON employees
WHEN old.city_folded IS NOT new.city_folded OR old.country_folded IS NOT new.country_folded
BEGIN
    DELETE FROM employee_places
    WHERE city_folded = old.city_folded AND country_folded = old.country_folded AND n = 1;
    UPDATE employee_places SET n = n - 1
    WHERE city_folded = old.city_folded AND country_folded = old.country_folded;
    INSERT INTO employee_places (city_folded, country_folded, n)
    VALUES (new.city_folded, new.country_folded, 1)
    ON CONFLICT (city_folded, country_folded) DO UPDATE SET n = n + 1;
END;

-- A filter that matches few employees is answered through the places: the matching pairs from
-- employee_places, then their employees by this index (see `Db::list_page`).
CREATE INDEX employees_place_idx ON employees (city_folded, country_folded);

-- The FTS5 trigram index of 0001 is no longer read: a common value is found faster by walking
-- the sort order's index (it stops after a page: 4 ms instead of 84 ms for "london" sorted by
-- name, where FTS5 gathered and sorted all 68k matches), and a rare one through its places.
-- Dropping it also takes two index writes off every insert and update.
DROP TRIGGER employees_fts_ins;
DROP TRIGGER employees_fts_del;
DROP TRIGGER employees_fts_upd;
DROP TABLE employees_fts;
