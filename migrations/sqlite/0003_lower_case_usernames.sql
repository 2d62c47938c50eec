-- Usernames are stored lower-cased, which is what makes the UNIQUE constraint
-- case-insensitive. Until now only the application enforced it; the database now refuses
-- anything else too. SQLite cannot add a CHECK to an existing table, so the table is rebuilt
-- (users has no foreign keys pointing at it). Usernames are ASCII, so SQLite's lower() (ASCII
-- only) is the exact rule.
CREATE TABLE users_new (
    -- AUTOINCREMENT: ids are never reused, so an old token cannot name a newer user.
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    username      TEXT NOT NULL UNIQUE CHECK (username = lower(username)),
    password_hash TEXT NOT NULL,
    is_admin      INTEGER NOT NULL DEFAULT 0 CHECK (is_admin IN (0, 1)),
    created_at    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

INSERT INTO users_new (id, username, password_hash, is_admin, created_at)
SELECT id, username, password_hash, is_admin, created_at FROM users;

-- Keep the id sequence where it was: ids of deleted users must never come back.
INSERT INTO sqlite_sequence (name, seq)
SELECT 'users_new', seq FROM sqlite_sequence WHERE name = 'users'
  AND NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'users_new');
UPDATE sqlite_sequence
SET seq = max(seq, (SELECT seq FROM sqlite_sequence WHERE name = 'users'))
WHERE name = 'users_new' AND EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'users');

DROP TABLE users;
ALTER TABLE users_new RENAME TO users;
