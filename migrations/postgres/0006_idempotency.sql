-- Safe retries (draft-ietf-httpapi-idempotency-key-header): the answer to a request sent with
-- `Idempotency-Key` on POST /employees/ or POST /employees/import, kept so that a repeat gets
-- it again instead of writing again. See src/db/idempotency.rs for the life of a row.
--
-- One row per (owner, key). `owner` is the credential the answer belongs to (`user:<id>` for
-- the user of a login session, `api_key:<id>` for an API key): two credentials never see each
-- other's answers. A row starts as a claim (`status` NULL, `locked_until` the end of its lease:
-- a repeat meanwhile gets 409; after it, the request is presumed dead and a retry takes the
-- claim over), and becomes the stored answer (`status`, `headers`, `body`). Times are Unix
-- seconds; the housekeeping purge deletes rows from `expires_at` on (IDEMPOTENCY_TTL_HOURS
-- after the answer), and a lookup already ignores them.
CREATE TABLE idempotency_keys (
    owner         TEXT NOT NULL,
    idem_key      TEXT NOT NULL CHECK (length(idem_key) BETWEEN 1 AND 255),
    -- SHA-256 of the method, path, query, Content-Type and body (src/domain/idempotency.rs).
    fingerprint   BYTEA NOT NULL,
    -- Random per claim: only the request that holds it may store its answer or give it up.
    claim         BYTEA NOT NULL,
    created_at    BIGINT NOT NULL,
    locked_until  BIGINT,
    expires_at    BIGINT NOT NULL,
    status        INTEGER CHECK (status BETWEEN 100 AND 599),
    -- A JSON array of [name, value] pairs: only the headers listed in src/routes/idempotency.rs.
    headers       TEXT,
    body          BYTEA CHECK (length(body) <= 65536),
    PRIMARY KEY (owner, idem_key)
);
CREATE INDEX idempotency_keys_expiry_idx ON idempotency_keys (expires_at);
