-- Versions, the audit trail and the archive of deleted employees. Same logical schema as
-- migrations/postgres/0005 (see there for the why).

ALTER TABLE employees ADD COLUMN version INTEGER NOT NULL DEFAULT 0;

CREATE TABLE audit_head (
    id            INTEGER PRIMARY KEY CHECK (id = 1),
    seq           INTEGER NOT NULL,
    hash          BLOB NOT NULL,
    employees_seq INTEGER NOT NULL
);
INSERT INTO audit_head (id, seq, hash, employees_seq) VALUES (1, 0, zeroblob(32), 0);

CREATE TABLE audit_entries (
    seq           INTEGER PRIMARY KEY,
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
    erased_at     INTEGER,
    hash          BLOB NOT NULL
);
CREATE INDEX audit_entries_target_idx ON audit_entries (target_type, target_id, seq);
CREATE INDEX audit_entries_actor_idx ON audit_entries (actor_id, seq);
CREATE INDEX audit_entries_action_idx ON audit_entries (action, seq);
CREATE INDEX audit_entries_at_idx ON audit_entries (at, seq);
CREATE INDEX audit_entries_record_idx ON audit_entries (record_id) WHERE record_id IS NOT NULL;

CREATE TABLE audit_personal (
    seq  INTEGER PRIMARY KEY REFERENCES audit_entries (seq),
    salt BLOB NOT NULL,
    data TEXT NOT NULL
);

CREATE TABLE deleted_employees (
    id              BLOB PRIMARY KEY,
    emp_id          INTEGER NOT NULL,
    emp_name        TEXT NOT NULL,
    city            TEXT NOT NULL,
    country         TEXT NOT NULL,
    emp_dob         TEXT NOT NULL,
    deleted_at      INTEGER NOT NULL,
    deleted_by_type TEXT NOT NULL,
    deleted_by_id   INTEGER,
    deleted_seq     INTEGER NOT NULL UNIQUE
) WITHOUT ROWID;
CREATE INDEX deleted_employees_emp_id_idx ON deleted_employees (emp_id, deleted_seq);
CREATE INDEX deleted_employees_deleted_at_idx ON deleted_employees (deleted_at);
