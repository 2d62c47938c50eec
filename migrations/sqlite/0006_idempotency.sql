-- Safe retries: answers stored for `Idempotency-Key`. Same logical schema as
-- migrations/postgres/0006 (see there for the why); times are Unix seconds.
CREATE TABLE idempotency_keys (
    owner         TEXT NOT NULL,
    idem_key      TEXT NOT NULL CHECK (length(idem_key) BETWEEN 1 AND 255),
    fingerprint   BLOB NOT NULL,
    claim         BLOB NOT NULL,
    created_at    INTEGER NOT NULL,
    locked_until  INTEGER,
    expires_at    INTEGER NOT NULL,
    status        INTEGER CHECK (status BETWEEN 100 AND 599),
    headers       TEXT,
    body          BLOB CHECK (length(body) <= 65536),
    PRIMARY KEY (owner, idem_key)
) WITHOUT ROWID;
CREATE INDEX idempotency_keys_expiry_idx ON idempotency_keys (expires_at);
