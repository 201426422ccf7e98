-- A smaller ledger (issue 13: bytes per event). Hashes as their 32 bytes rather than 64
-- characters of hex, and events' log leaves not stored twice. What the
-- chain commits to is unchanged: the server reads them back as the same lowercase hex. SQLite
-- changes a column's type only by copying the table, with foreign keys off (which only works
-- outside a transaction, hence metadata.toml and the transaction below). A value already
-- binary is kept as it is, so that running this twice does no harm.
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
SELECT id, iif(typeof(subject_key) = 'text', unhex(subject_key), subject_key), seq, kind, document, version, covers, recorded_at, recorded_by, method,
       iif(typeof(subject_hash) = 'text', unhex(subject_hash), subject_hash), iif(typeof(ip_hash) = 'text', unhex(ip_hash), ip_hash), iif(typeof(user_agent_hash) = 'text', unhex(user_agent_hash), user_agent_hash), locale, idempotency_key,
       iif(typeof(request_hash) = 'text', unhex(request_hash), request_hash), iif(typeof(prev_hash) = 'text', unhex(prev_hash), prev_hash), iif(typeof(chain_hash) = 'text', unhex(chain_hash), chain_hash)
FROM events ORDER BY id;
CREATE TEMP TABLE events_sequence AS SELECT seq FROM sqlite_sequence WHERE name = 'events';
DROP TABLE events;
ALTER TABLE events_new RENAME TO events;
UPDATE sqlite_sequence SET seq = max(seq, COALESCE((SELECT seq FROM temp.events_sequence), 0)) WHERE name = 'events';
DROP TABLE temp.events_sequence;
CREATE INDEX events_recorded_at ON events (recorded_at);
CREATE INDEX events_document_id ON events (document, id);
CREATE INDEX events_kind_recorded_at ON events (kind, recorded_at);

CREATE TABLE event_personal_new (
    event_id INTEGER PRIMARY KEY REFERENCES events (id),
    subject TEXT NOT NULL,
    salt BLOB NOT NULL,
    ip TEXT,
    user_agent TEXT,
    evidence_salt BLOB
);
INSERT INTO event_personal_new (event_id, subject, salt, ip, user_agent, evidence_salt)
SELECT event_id, subject, iif(typeof(salt) = 'text', unhex(salt), salt), ip, user_agent, iif(typeof(evidence_salt) = 'text', unhex(evidence_salt), evidence_salt) FROM event_personal ORDER BY event_id;
DROP TABLE event_personal;
ALTER TABLE event_personal_new RENAME TO event_personal;

CREATE TABLE subject_heads_new (
    subject_key BLOB PRIMARY KEY,
    seq BIGINT NOT NULL,
    chain_hash BLOB NOT NULL
);
INSERT INTO subject_heads_new (subject_key, seq, chain_hash)
SELECT iif(typeof(subject_key) = 'text', unhex(subject_key), subject_key), seq, iif(typeof(chain_hash) = 'text', unhex(chain_hash), chain_hash) FROM subject_heads;
DROP TABLE subject_heads;
ALTER TABLE subject_heads_new RENAME TO subject_heads;

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
SELECT iif(typeof(subject_key) = 'text', unhex(subject_key), subject_key), document, state, version, covers, last_event_id, updated_at,
       highest_accepted, accepted_covers, accepted_at FROM subject_documents;
DROP TABLE subject_documents;
ALTER TABLE subject_documents_new RENAME TO subject_documents;
CREATE INDEX subject_documents_coverage ON subject_documents (document, state, version);
CREATE INDEX subject_documents_accepted_at ON subject_documents (document, accepted_at);

CREATE TABLE log_nodes_new (
    level INTEGER NOT NULL,
    idx BIGINT NOT NULL,
    hash BLOB NOT NULL,
    PRIMARY KEY (level, idx)
) WITHOUT ROWID;
INSERT INTO log_nodes_new (level, idx, hash) SELECT level, idx, iif(typeof(hash) = 'text', unhex(hash), hash) FROM log_nodes;
DROP TABLE log_nodes;
ALTER TABLE log_nodes_new RENAME TO log_nodes;

-- An event's leaf is `{"chain_hash": …, "type": "event" or "erasure"}`: its row holds both, so
-- the text is written out when read rather than stored a second time. A stored leaf that does
-- not read as its event does (changed behind the server's back) is kept, so verify still sees it.
CREATE TABLE log_leaves_new (
    idx INTEGER PRIMARY KEY,
    event_id BIGINT REFERENCES events (id),
    version_id BIGINT REFERENCES versions (id),
    data TEXT
);
INSERT INTO log_leaves_new (idx, event_id, version_id, data)
SELECT l.idx, l.event_id, l.version_id,
       CASE WHEN l.event_id IS NOT NULL AND e.id IS NOT NULL AND l.data = '{"chain_hash":"' || lower(hex(e.chain_hash))
                 || '","type":"' || CASE WHEN e.kind = 'erased' THEN 'erasure' ELSE 'event' END || '"}'
            THEN NULL ELSE l.data END
FROM log_leaves l LEFT JOIN events e ON e.id = l.event_id ORDER BY l.idx;
DROP TABLE log_leaves;
ALTER TABLE log_leaves_new RENAME TO log_leaves;
CREATE UNIQUE INDEX log_leaves_event ON log_leaves (event_id) WHERE event_id IS NOT NULL;
CREATE UNIQUE INDEX log_leaves_version ON log_leaves (version_id) WHERE version_id IS NOT NULL;

-- The triggers of 000007, which went with the tables they were on.
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

CREATE TRIGGER coverage_known AFTER INSERT ON subject_heads
BEGIN
    INSERT INTO coverage_counts (document, state, accepted_covers, accepted_day, n) VALUES ('', 'known', '', '', 1)
    ON CONFLICT (document, state, accepted_covers, accepted_day) DO UPDATE SET n = n + 1;
END;

COMMIT;
PRAGMA foreign_keys = ON;
