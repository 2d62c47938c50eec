-- Accounts can be disabled; logins create sessions with rotating refresh tokens; scripts get
-- API keys. Same logical schema as migrations/postgres/0004 (times are Unix seconds).

ALTER TABLE users ADD COLUMN is_active INTEGER NOT NULL DEFAULT 1 CHECK (is_active IN (0, 1));

CREATE TABLE sessions (
    id              BLOB PRIMARY KEY,
    user_id         INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    scopes          TEXT NOT NULL,
    client_ip       TEXT NOT NULL,
    user_agent      TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    last_used_at    INTEGER NOT NULL,
    expires_at      INTEGER NOT NULL,
    idle_expires_at INTEGER NOT NULL,
    revoked_at      INTEGER,
    revoked_reason  TEXT
);
CREATE INDEX sessions_user_idx ON sessions (user_id);
CREATE INDEX sessions_idle_expiry_idx ON sessions (idle_expires_at);

CREATE TABLE refresh_tokens (
    hash        BLOB PRIMARY KEY,
    session_id  BLOB NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    created_at  INTEGER NOT NULL,
    rotated_at  INTEGER
) WITHOUT ROWID;
CREATE INDEX refresh_tokens_session_idx ON refresh_tokens (session_id);

CREATE TABLE api_keys (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    name         TEXT NOT NULL,
    prefix       TEXT NOT NULL,
    hash         BLOB NOT NULL UNIQUE,
    scopes       TEXT NOT NULL,
    created_by   INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER,
    last_used_at INTEGER,
    revoked_at   INTEGER
);
CREATE INDEX api_keys_creator_idx ON api_keys (created_by);
