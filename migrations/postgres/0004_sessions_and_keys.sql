-- Accounts can be disabled; logins create sessions with rotating refresh tokens; scripts get
-- API keys. Times are Unix seconds (BIGINT) on both backends, so comparisons are plain integer
-- comparisons whatever the database's time zone or SQLite's lack of a time type.

ALTER TABLE users ADD COLUMN is_active BOOLEAN NOT NULL DEFAULT TRUE;

-- One row per login. Access tokens carry the id as `sid`; every request checks the session is
-- still live in the same query that re-reads the user.
CREATE TABLE sessions (
    id              UUID PRIMARY KEY,
    user_id         BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- Space-separated OAuth2 scopes the session's tokens carry.
    scopes          TEXT NOT NULL,
    client_ip       TEXT NOT NULL,
    user_agent      TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    -- The last login or refresh (not every request: that would be a write per request).
    last_used_at    BIGINT NOT NULL,
    -- The absolute end (REFRESH_TOKEN_ABSOLUTE_DAYS after login).
    expires_at      BIGINT NOT NULL,
    -- The idle end (REFRESH_TOKEN_IDLE_MINUTES after the last use), never after expires_at.
    idle_expires_at BIGINT NOT NULL,
    revoked_at      BIGINT,
    -- Why it was revoked: logout, reuse (a rotated refresh token came back), password, admin.
    revoked_reason  TEXT
);
CREATE INDEX sessions_user_idx ON sessions (user_id);
CREATE INDEX sessions_idle_expiry_idx ON sessions (idle_expires_at);

-- Refresh tokens, stored only as their SHA-256. A rotated token is kept (rotated_at set) so
-- that its return is recognised as theft, until its session ends or the purge ages it out.
CREATE TABLE refresh_tokens (
    hash        BYTEA PRIMARY KEY,
    session_id  UUID NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    created_at  BIGINT NOT NULL,
    rotated_at  BIGINT
);
CREATE INDEX refresh_tokens_session_idx ON refresh_tokens (session_id);

-- API keys for scripts: stored as a keyed hash (HMAC-SHA256) of the secret; `prefix` is the
-- recognisable start shown in lists. A key works only while its creator is an active admin.
CREATE TABLE api_keys (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name         TEXT NOT NULL,
    prefix       TEXT NOT NULL,
    hash         BYTEA NOT NULL UNIQUE,
    scopes       TEXT NOT NULL,
    created_by   BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT,
    last_used_at BIGINT,
    revoked_at   BIGINT
);
CREATE INDEX api_keys_creator_idx ON api_keys (created_by);
