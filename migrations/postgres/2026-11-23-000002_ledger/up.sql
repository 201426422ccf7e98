-- API keys: only a SHA-256 of the key is kept; `prefix` finds the row.
CREATE TABLE api_keys (
    id BIGSERIAL PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    prefix TEXT NOT NULL UNIQUE,
    key_hash TEXT NOT NULL,
    scope TEXT NOT NULL CHECK (scope IN ('read', 'write', 'admin')),
    created_at TIMESTAMP NOT NULL,
    last_used_at TIMESTAMP,
    revoked_at TIMESTAMP
);

-- The ledger: append-only. No code path updates or deletes a row.
CREATE TABLE events (
    id BIGSERIAL PRIMARY KEY,
    subject TEXT NOT NULL,
    seq BIGINT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('accepted', 'declined', 'withdrawn')),
    document TEXT NOT NULL,
    version INTEGER,
    covers TEXT NOT NULL,
    recorded_at TIMESTAMP NOT NULL,
    recorded_by TEXT NOT NULL,
    method TEXT NOT NULL,
    ip TEXT,
    user_agent TEXT,
    locale TEXT,
    idempotency_key TEXT,
    request_hash TEXT,
    prev_hash TEXT NOT NULL,
    chain_hash TEXT NOT NULL,
    UNIQUE (subject, seq),
    UNIQUE (subject, idempotency_key)
);
CREATE INDEX events_recorded_at ON events (recorded_at);

-- The head of each subject's hash chain.
CREATE TABLE subject_heads (
    subject TEXT PRIMARY KEY,
    seq BIGINT NOT NULL,
    chain_hash TEXT NOT NULL
);

-- The latest decision per (subject, agreement), kept in the same transaction as the event, so
-- that a status check reads a few small rows instead of the history.
CREATE TABLE subject_documents (
    subject TEXT NOT NULL,
    document TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('accepted', 'declined', 'withdrawn')),
    version INTEGER,
    covers TEXT NOT NULL,
    last_event_id BIGINT NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    PRIMARY KEY (subject, document)
);

-- Secrets the server generates once (for keyed IP hashes and signed links).
CREATE TABLE server_secrets (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);
