-- Back to the covers text in every row, and the idempotency key's unique constraint on all events.
PRAGMA foreign_keys = OFF;
BEGIN;

CREATE TABLE events_new (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    subject_key BLOB NOT NULL,
    seq BIGINT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('accepted', 'declined', 'withdrawn', 'erasure_requested', 'erased')),
    document TEXT,
    version INTEGER,
    covers TEXT NOT NULL,
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
    UNIQUE (subject_key, seq),
    UNIQUE (subject_key, idempotency_key)
);
INSERT INTO events_new (id, subject_key, seq, kind, document, version, covers, recorded_at, recorded_by, method,
                        subject_hash, ip_hash, user_agent_hash, locale, idempotency_key, request_hash, prev_hash, chain_hash)
SELECT e.id, e.subject_key, e.seq, e.kind, e.document, e.version, c.covers, e.recorded_at, e.recorded_by, e.method,
       e.subject_hash, e.ip_hash, e.user_agent_hash, e.locale, e.idempotency_key, e.request_hash, e.prev_hash, e.chain_hash
FROM events e LEFT JOIN covers_sets c ON c.id = e.covers_id ORDER BY e.id;
CREATE TEMP TABLE events_sequence AS SELECT seq FROM sqlite_sequence WHERE name = 'events';
DROP TABLE events;
ALTER TABLE events_new RENAME TO events;
DELETE FROM sqlite_sequence WHERE name = 'events';
INSERT INTO sqlite_sequence (name, seq)
VALUES ('events', max(COALESCE((SELECT seq FROM temp.events_sequence), 0), COALESCE((SELECT max(id) FROM events), 0)));
DROP TABLE temp.events_sequence;
CREATE INDEX events_recorded_at ON events (recorded_at);
CREATE INDEX events_document_id ON events (document, id);
CREATE INDEX events_kind_recorded_at ON events (kind, recorded_at);

CREATE TABLE subject_documents_new (
    subject_key BLOB NOT NULL,
    document TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('accepted', 'declined', 'withdrawn')),
    version INTEGER,
    covers TEXT NOT NULL,
    last_event_id BIGINT NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    highest_accepted INTEGER,
    accepted_covers TEXT,
    accepted_at TIMESTAMP,
    PRIMARY KEY (subject_key, document)
);
INSERT INTO subject_documents_new (subject_key, document, state, version, covers, last_event_id, updated_at,
                                   highest_accepted, accepted_covers, accepted_at)
SELECT d.subject_key, d.document, d.state, d.version, c.covers, d.last_event_id, d.updated_at,
       d.highest_accepted, a.covers, d.accepted_at
FROM subject_documents d LEFT JOIN covers_sets c ON c.id = d.covers_id LEFT JOIN covers_sets a ON a.id = d.accepted_covers_id;
DROP TABLE subject_documents;
ALTER TABLE subject_documents_new RENAME TO subject_documents;
CREATE INDEX subject_documents_coverage ON subject_documents (document, state, version);
CREATE INDEX subject_documents_accepted_at ON subject_documents (document, accepted_at);
DROP TABLE covers_sets;

CREATE TRIGGER coverage_on_insert AFTER INSERT ON subject_documents
WHEN NEW.accepted_covers IS NOT NULL OR NEW.state = 'declined'
BEGIN
    INSERT INTO coverage_counts (document, state, accepted_covers, accepted_day, n)
    VALUES (NEW.document, NEW.state, COALESCE(NEW.accepted_covers, ''), COALESCE(substr(NEW.accepted_at, 1, 10), ''), 1)
    ON CONFLICT (document, state, accepted_covers, accepted_day) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER coverage_on_delete AFTER DELETE ON subject_documents
WHEN OLD.accepted_covers IS NOT NULL OR OLD.state = 'declined'
BEGIN
    UPDATE coverage_counts SET n = n - 1
    WHERE document = OLD.document AND state = OLD.state AND accepted_covers = COALESCE(OLD.accepted_covers, '')
      AND accepted_day = COALESCE(substr(OLD.accepted_at, 1, 10), '');
    DELETE FROM coverage_counts
    WHERE document = OLD.document AND state = OLD.state AND accepted_covers = COALESCE(OLD.accepted_covers, '')
      AND accepted_day = COALESCE(substr(OLD.accepted_at, 1, 10), '') AND n = 0;
END;

CREATE TRIGGER coverage_on_update_old AFTER UPDATE ON subject_documents
WHEN (OLD.accepted_covers IS NOT NULL OR OLD.state = 'declined')
 AND (OLD.state IS NOT NEW.state OR OLD.accepted_covers IS NOT NEW.accepted_covers
      OR substr(OLD.accepted_at, 1, 10) IS NOT substr(NEW.accepted_at, 1, 10))
BEGIN
    UPDATE coverage_counts SET n = n - 1
    WHERE document = OLD.document AND state = OLD.state AND accepted_covers = COALESCE(OLD.accepted_covers, '')
      AND accepted_day = COALESCE(substr(OLD.accepted_at, 1, 10), '');
    DELETE FROM coverage_counts
    WHERE document = OLD.document AND state = OLD.state AND accepted_covers = COALESCE(OLD.accepted_covers, '')
      AND accepted_day = COALESCE(substr(OLD.accepted_at, 1, 10), '') AND n = 0;
END;

CREATE TRIGGER coverage_on_update_new AFTER UPDATE ON subject_documents
WHEN (NEW.accepted_covers IS NOT NULL OR NEW.state = 'declined')
 AND (OLD.state IS NOT NEW.state OR OLD.accepted_covers IS NOT NEW.accepted_covers
      OR substr(OLD.accepted_at, 1, 10) IS NOT substr(NEW.accepted_at, 1, 10))
BEGIN
    INSERT INTO coverage_counts (document, state, accepted_covers, accepted_day, n)
    VALUES (NEW.document, NEW.state, COALESCE(NEW.accepted_covers, ''), COALESCE(substr(NEW.accepted_at, 1, 10), ''), 1)
    ON CONFLICT (document, state, accepted_covers, accepted_day) DO UPDATE SET n = n + 1;
END;

COMMIT;
PRAGMA foreign_keys = ON;
