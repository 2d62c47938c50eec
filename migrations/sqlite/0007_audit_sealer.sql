-- Entries recorded but not yet in the chain. Same logical schema as
-- migrations/postgres/0007 (see there for the why).
CREATE TABLE audit_pending (
    -- AUTOINCREMENT: ids are never reused (they are the versions of employee records).
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    at            INTEGER NOT NULL,
    actor_type    TEXT NOT NULL,
    actor_id      INTEGER,
    session_id    BLOB,
    client_ip     TEXT,
    request_id    TEXT,
    action        TEXT NOT NULL,
    target_type   TEXT NOT NULL,
    target_id     TEXT,
    record_id     BLOB,
    fields        TEXT NOT NULL,
    personal_hash BLOB,
    salt          BLOB,
    data          TEXT,
    erased_at     INTEGER,
    lists         INTEGER NOT NULL
);
-- The first id is above every sequence number handed out as a version so far.
INSERT INTO sqlite_sequence (name, seq) VALUES ('audit_pending', (SELECT seq FROM audit_head));

ALTER TABLE audit_head ADD COLUMN employee_writes INTEGER NOT NULL DEFAULT 0;
UPDATE audit_head SET employee_writes = employees_seq;
ALTER TABLE audit_head DROP COLUMN employees_seq;
