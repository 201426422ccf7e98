-- The ledger in its second form (issue 9): personal data apart from the chained rows, so that it
-- can be erased while every chain still verifies, and one append-only Merkle log over every event
-- and every published version. There were no deployments of the first form: its ledger tables
-- are dropped, not re-chained (see README, "Upgrading").
DROP TABLE subject_documents;
DROP TABLE subject_heads;
DROP TABLE events;

-- The ledger: append-only. `subject_key` is a keyed hash of the subject id (HMAC-SHA256 under a
-- key derived from the server secret): it finds a subject's rows without storing the id. The
-- chain commits to `subject_hash`, `ip_hash` and `user_agent_hash`: salted hashes whose salt
-- and plain values live in event_personal.
CREATE TABLE events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    subject_key TEXT NOT NULL,
    seq BIGINT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('accepted', 'declined', 'withdrawn', 'erasure_requested', 'erased')),
    document TEXT,
    version INTEGER,
    covers TEXT NOT NULL,
    recorded_at TIMESTAMP NOT NULL,
    recorded_by TEXT NOT NULL,
    method TEXT NOT NULL,
    subject_hash TEXT NOT NULL,
    ip_hash TEXT,
    user_agent_hash TEXT,
    locale TEXT,
    idempotency_key TEXT,
    request_hash TEXT,
    prev_hash TEXT NOT NULL,
    chain_hash TEXT NOT NULL,
    UNIQUE (subject_key, seq),
    UNIQUE (subject_key, idempotency_key)
);
CREATE INDEX events_recorded_at ON events (recorded_at);
CREATE INDEX events_document_id ON events (document, id);
CREATE INDEX events_kind_recorded_at ON events (kind, recorded_at);

-- Personal data of an event, erasable: the subject id and the salt of its hash; the evidence's IP
-- address and user agent and the salt of theirs. Erasure deletes the row; retention clears the
-- evidence and its salt (a salt kept beside a hash of a truncated IP address would let anyone
-- find the address by trying them all).
CREATE TABLE event_personal (
    event_id BIGINT PRIMARY KEY REFERENCES events (id),
    subject TEXT NOT NULL,
    salt TEXT NOT NULL,
    ip TEXT,
    user_agent TEXT,
    evidence_salt TEXT
);

CREATE TABLE subject_heads (
    subject_key TEXT PRIMARY KEY,
    seq BIGINT NOT NULL,
    chain_hash TEXT NOT NULL
);

CREATE TABLE subject_documents (
    subject_key TEXT NOT NULL,
    document TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('accepted', 'declined', 'withdrawn')),
    version INTEGER,
    covers TEXT NOT NULL,
    last_event_id BIGINT NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    PRIMARY KEY (subject_key, document)
);
CREATE INDEX subject_documents_coverage ON subject_documents (document, state, version);

-- The Merkle log (RFC 9162 hashing). Each leaf is an event or a published version; `data` is the
-- leaf's exact bytes (canonical JSON).
CREATE TABLE log_leaves (
    idx BIGINT PRIMARY KEY,
    event_id BIGINT UNIQUE REFERENCES events (id),
    version_id BIGINT UNIQUE REFERENCES versions (id),
    data TEXT NOT NULL
);
-- Every complete subtree: (level, idx) hashes leaves [idx * 2^level, (idx + 1) * 2^level). Any
-- root or proof is a few of these, so no request reads the whole log.
CREATE TABLE log_nodes (
    level INTEGER NOT NULL,
    idx BIGINT NOT NULL,
    hash TEXT NOT NULL,
    PRIMARY KEY (level, idx)
);
-- What is committed but not yet in the log, in commit order.
CREATE TABLE log_queue (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id BIGINT UNIQUE,
    version_id BIGINT UNIQUE
);
-- The tree's size and root; one row.
CREATE TABLE log_state (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    size BIGINT NOT NULL,
    root TEXT NOT NULL
);
INSERT INTO log_state (id, size, root) VALUES (1, 0, 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
-- Versions published before the log existed become its first leaves.
INSERT INTO log_queue (version_id) SELECT id FROM versions ORDER BY id;
