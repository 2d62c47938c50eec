-- Data you can trust: every employee row carries the audit sequence number of its last write
-- (its version, the strong ETag); deleted records are archived for DELETED_RETENTION_DAYS; and
-- every write is recorded in a hash-chained audit trail whose personal values are stored apart,
-- so a person can be erased while the chain still verifies.

-- 0: written before this migration (no audit entry yet).
ALTER TABLE employees ADD COLUMN version BIGINT NOT NULL DEFAULT 0;

-- The chain's head: the last entry's sequence number and hash. Appends lock this row until
-- they commit, so sequence numbers are handed out in commit order (a follower of the feed can
-- never miss an entry) and each entry knows its predecessor's hash. `employees_seq` is the last
-- entry that changed an employee row: the data version behind list ETags.
CREATE TABLE audit_head (
    id            SMALLINT PRIMARY KEY CHECK (id = 1),
    seq           BIGINT NOT NULL,
    hash          BYTEA NOT NULL,
    employees_seq BIGINT NOT NULL
);
INSERT INTO audit_head (id, seq, hash, employees_seq)
VALUES (1, 0, decode(repeat('00', 32), 'hex'), 0);

-- One entry per recorded event. `hash` = SHA-256(previous hash || seq || the canonical JSON of
-- every other column but `erased_at`), see src/domain/audit.rs. `personal_hash` covers the
-- personal part (audit_personal) salted, so erasing that part leaves the chain intact and the
-- hash useless for guessing the erased values.
CREATE TABLE audit_entries (
    seq           BIGINT PRIMARY KEY,
    -- Unix milliseconds.
    at            BIGINT NOT NULL,
    actor_type    TEXT NOT NULL,
    actor_id      BIGINT,
    session_id    UUID,
    client_ip     TEXT,
    request_id    TEXT,
    action        TEXT NOT NULL,
    target_type   TEXT NOT NULL,
    target_id     TEXT,
    -- The employee record (person) the entry is about: what an erasure looks for.
    record_id     UUID,
    -- JSON array of the changed fields' names (their values are personal).
    fields        TEXT NOT NULL,
    personal_hash BYTEA,
    -- When the personal part was erased (not covered by the hash).
    erased_at     BIGINT,
    hash          BYTEA NOT NULL
);
CREATE INDEX audit_entries_target_idx ON audit_entries (target_type, target_id, seq);
CREATE INDEX audit_entries_actor_idx ON audit_entries (actor_id, seq);
CREATE INDEX audit_entries_action_idx ON audit_entries (action, seq);
CREATE INDEX audit_entries_at_idx ON audit_entries (at, seq);
CREATE INDEX audit_entries_record_idx ON audit_entries (record_id) WHERE record_id IS NOT NULL;

-- The personal values of an entry's changes, `{"field": {"from": ..., "to": ...}}`, and the
-- random salt of its hash. Deleted on erasure.
CREATE TABLE audit_personal (
    seq  BIGINT PRIMARY KEY REFERENCES audit_entries (seq),
    salt BYTEA NOT NULL,
    data TEXT NOT NULL
);

-- Deleted employees, restorable until erased (by hand or after the retention).
CREATE TABLE deleted_employees (
    id          UUID PRIMARY KEY,
    emp_id      BIGINT NOT NULL,
    emp_name    TEXT COLLATE "C" NOT NULL,
    city        TEXT COLLATE "C" NOT NULL,
    country     TEXT COLLATE "C" NOT NULL,
    emp_dob     DATE NOT NULL,
    -- Unix seconds.
    deleted_at  BIGINT NOT NULL,
    deleted_by_type TEXT NOT NULL,
    deleted_by_id   BIGINT,
    -- The audit entry of the deletion: the order of the archive's pages.
    deleted_seq BIGINT NOT NULL UNIQUE
);
CREATE INDEX deleted_employees_emp_id_idx ON deleted_employees (emp_id, deleted_seq);
CREATE INDEX deleted_employees_deleted_at_idx ON deleted_employees (deleted_at);
