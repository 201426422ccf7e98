-- A smaller ledger, continued (issue 13: bytes per event). What an event covers (a JSON list of
-- documents, versions and hashes, some 150 bytes) repeats across thousands of events alike, so
-- it is stored once, in covers_sets, and events and status rows refer to it by id. The text is
-- unchanged, and so is what the chain commits to. No foreign key points at covers_sets, as on
-- PostgreSQL (see there); `verify` names an id that points nowhere. Besides: the idempotency key's unique index
-- holds only the events that have one, and subject_documents, whose rows are found by their
-- primary key, is kept in that key's order (WITHOUT ROWID) instead of in a table and an index
-- beside it. SQLite drops columns only by copying the table, with foreign keys off (outside a
-- transaction, hence metadata.toml and the transaction below).
PRAGMA foreign_keys = OFF;
BEGIN;

CREATE TABLE covers_sets (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    covers TEXT NOT NULL UNIQUE
);
INSERT INTO covers_sets (covers)
SELECT covers FROM events UNION SELECT covers FROM subject_documents
UNION SELECT accepted_covers FROM subject_documents WHERE accepted_covers IS NOT NULL ORDER BY 1;

CREATE TABLE events_new (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    subject_key BLOB NOT NULL,
    seq BIGINT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('accepted', 'declined', 'withdrawn', 'erasure_requested', 'erased')),
    document TEXT,
    version INTEGER,
    covers_id BIGINT NOT NULL,
    recorded_at TIMESTAMP NOT NULL,
    recorded_by TEXT NOT NULL,
    method TEXT NOT NULL,
    subject_hash BLOB NOT NULL,
    ip_hash BLOB,
    user_agent_hash BLOB,
    locale TEXT,
    idempotency_key TEXT,
    request_hash BLOB,
    prev_hash BLOB NOT NULL,
    chain_hash BLOB NOT NULL,
    UNIQUE (subject_key, seq)
);
INSERT INTO events_new (id, subject_key, seq, kind, document, version, covers_id, recorded_at, recorded_by, method,
                        subject_hash, ip_hash, user_agent_hash, locale, idempotency_key, request_hash, prev_hash, chain_hash)
SELECT e.id, e.subject_key, e.seq, e.kind, e.document, e.version, c.id, e.recorded_at, e.recorded_by, e.method,
       e.subject_hash, e.ip_hash, e.user_agent_hash, e.locale, e.idempotency_key, e.request_hash, e.prev_hash, e.chain_hash
FROM events e JOIN covers_sets c ON c.covers = e.covers ORDER BY e.id;
CREATE TEMP TABLE events_sequence AS SELECT seq FROM sqlite_sequence WHERE name = 'events';
DROP TABLE events;
ALTER TABLE events_new RENAME TO events;
-- The next id stays past every id ever given (log_leaves refers to events by id), even if the
-- copy brought no row.
DELETE FROM sqlite_sequence WHERE name = 'events';
INSERT INTO sqlite_sequence (name, seq)
VALUES ('events', max(COALESCE((SELECT seq FROM temp.events_sequence), 0), COALESCE((SELECT max(id) FROM events), 0)));
DROP TABLE temp.events_sequence;
CREATE UNIQUE INDEX events_idempotency ON events (subject_key, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX events_recorded_at ON events (recorded_at);
CREATE INDEX events_document_id ON events (document, id);
CREATE INDEX events_kind_recorded_at ON events (kind, recorded_at);

CREATE TABLE subject_documents_new (
    subject_key BLOB NOT NULL,
    document TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('accepted', 'declined', 'withdrawn')),
    version INTEGER,
    covers_id BIGINT NOT NULL,
    last_event_id BIGINT NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    highest_accepted INTEGER,
    accepted_covers_id BIGINT,
    accepted_at TIMESTAMP,
    PRIMARY KEY (subject_key, document)
) WITHOUT ROWID;
INSERT INTO subject_documents_new (subject_key, document, state, version, covers_id, last_event_id, updated_at,
                                   highest_accepted, accepted_covers_id, accepted_at)
SELECT d.subject_key, d.document, d.state, d.version, c.id, d.last_event_id, d.updated_at,
       d.highest_accepted, a.id, d.accepted_at
FROM subject_documents d JOIN covers_sets c ON c.covers = d.covers LEFT JOIN covers_sets a ON a.covers = d.accepted_covers;
DROP TABLE subject_documents;
ALTER TABLE subject_documents_new RENAME TO subject_documents;
CREATE INDEX subject_documents_coverage ON subject_documents (document, state, version);
CREATE INDEX subject_documents_accepted_at ON subject_documents (document, accepted_at);

-- The counts keep the text of what the acceptances covered (they are few, and read by it).
CREATE TRIGGER coverage_on_insert AFTER INSERT ON subject_documents
WHEN NEW.accepted_covers_id IS NOT NULL OR NEW.state = 'declined'
BEGIN
    INSERT INTO coverage_counts (document, state, accepted_covers, accepted_day, n)
    VALUES (NEW.document, NEW.state, COALESCE((SELECT covers FROM covers_sets WHERE id = NEW.accepted_covers_id), ''),
            COALESCE(substr(NEW.accepted_at, 1, 10), ''), 1)
    ON CONFLICT (document, state, accepted_covers, accepted_day) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER coverage_on_delete AFTER DELETE ON subject_documents
WHEN OLD.accepted_covers_id IS NOT NULL OR OLD.state = 'declined'
BEGIN
    UPDATE coverage_counts SET n = n - 1
    WHERE document = OLD.document AND state = OLD.state
      AND accepted_covers = COALESCE((SELECT covers FROM covers_sets WHERE id = OLD.accepted_covers_id), '')
      AND accepted_day = COALESCE(substr(OLD.accepted_at, 1, 10), '');
    DELETE FROM coverage_counts
    WHERE document = OLD.document AND state = OLD.state
      AND accepted_covers = COALESCE((SELECT covers FROM covers_sets WHERE id = OLD.accepted_covers_id), '')
      AND accepted_day = COALESCE(substr(OLD.accepted_at, 1, 10), '') AND n = 0;
END;

CREATE TRIGGER coverage_on_update_old AFTER UPDATE ON subject_documents
WHEN (OLD.accepted_covers_id IS NOT NULL OR OLD.state = 'declined')
 AND (OLD.state IS NOT NEW.state OR OLD.accepted_covers_id IS NOT NEW.accepted_covers_id
      OR substr(OLD.accepted_at, 1, 10) IS NOT substr(NEW.accepted_at, 1, 10))
BEGIN
    UPDATE coverage_counts SET n = n - 1
    WHERE document = OLD.document AND state = OLD.state
      AND accepted_covers = COALESCE((SELECT covers FROM covers_sets WHERE id = OLD.accepted_covers_id), '')
      AND accepted_day = COALESCE(substr(OLD.accepted_at, 1, 10), '');
    DELETE FROM coverage_counts
    WHERE document = OLD.document AND state = OLD.state
      AND accepted_covers = COALESCE((SELECT covers FROM covers_sets WHERE id = OLD.accepted_covers_id), '')
      AND accepted_day = COALESCE(substr(OLD.accepted_at, 1, 10), '') AND n = 0;
END;

CREATE TRIGGER coverage_on_update_new AFTER UPDATE ON subject_documents
WHEN (NEW.accepted_covers_id IS NOT NULL OR NEW.state = 'declined')
 AND (OLD.state IS NOT NEW.state OR OLD.accepted_covers_id IS NOT NEW.accepted_covers_id
      OR substr(OLD.accepted_at, 1, 10) IS NOT substr(NEW.accepted_at, 1, 10))
BEGIN
    INSERT INTO coverage_counts (document, state, accepted_covers, accepted_day, n)
    VALUES (NEW.document, NEW.state, COALESCE((SELECT covers FROM covers_sets WHERE id = NEW.accepted_covers_id), ''),
            COALESCE(substr(NEW.accepted_at, 1, 10), ''), 1)
    ON CONFLICT (document, state, accepted_covers, accepted_day) DO UPDATE SET n = n + 1;
END;

COMMIT;
PRAGMA foreign_keys = ON;
