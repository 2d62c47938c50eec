-- Audited writes no longer wait for each other. Until now every write locked the chain's head
-- row (`audit_head`) from its audit entry to its commit, so writes committed one at a time
-- (PostgreSQL's group commit could not help) and queued on that lock.
--
-- Now a write records its entry here, unnumbered, in its own transaction (still atomic with
-- the change), and takes the entry's `id` as the employee's version. The sealer (the server,
-- right after such commits; `employee-api audit verify`; any read of the trail) moves committed
-- entries into the chain in batches: it alone locks the head, numbers and hashes them. A
-- sequence number is therefore handed out only to a committed entry, after every entry before
-- it, and a follower of `seq > N` still never misses one.
CREATE TABLE audit_pending (
    -- Never reused: the versions of employee records, so a version (a strong ETag) never
    -- comes back. Starts above every sequence number handed out as a version so far.
    id            BIGSERIAL PRIMARY KEY,
    at            BIGINT NOT NULL,
    actor_type    TEXT NOT NULL,
    actor_id      BIGINT,
    session_id    UUID,
    client_ip     TEXT,
    request_id    TEXT,
    action        TEXT NOT NULL,
    target_type   TEXT NOT NULL,
    target_id     TEXT,
    record_id     UUID,
    fields        TEXT NOT NULL,
    personal_hash BYTEA,
    -- The personal part (NULL once erased, or when the entry has none).
    salt          BYTEA,
    data          TEXT,
    erased_at     BIGINT,
    -- Whether the entry changed the rows employee lists show (see `employee_writes`).
    lists         BOOLEAN NOT NULL
);
SELECT setval(pg_get_serial_sequence('audit_pending', 'id'), (SELECT seq FROM audit_head) + 1, false);

-- The list ETag's data version is now `employee_writes` plus the pending entries with `lists`:
-- the number of committed writes to employee rows, exact in every snapshot (the sealer moves
-- entries from one term to the other in one transaction), so it changes with every such write
-- and with nothing else. It starts at the old version so that it never goes back.
ALTER TABLE audit_head ADD COLUMN employee_writes BIGINT NOT NULL DEFAULT 0;
UPDATE audit_head SET employee_writes = employees_seq;
ALTER TABLE audit_head DROP COLUMN employees_seq;
