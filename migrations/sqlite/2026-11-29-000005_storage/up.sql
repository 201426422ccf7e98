-- Fewer B-trees written per decision. In SQLite only `INTEGER PRIMARY KEY` is the row id; a
-- `BIGINT PRIMARY KEY` is a second index beside the table. A leaf names an event or a version,
-- never both, so each unique index covers only the rows that have the column. The subtree hashes
-- are kept in their key's order (WITHOUT ROWID): one B-tree instead of two.
CREATE TABLE event_personal_new (
    event_id INTEGER PRIMARY KEY REFERENCES events (id),
    subject TEXT NOT NULL,
    salt TEXT NOT NULL,
    ip TEXT,
    user_agent TEXT,
    evidence_salt TEXT
);
INSERT INTO event_personal_new (event_id, subject, salt, ip, user_agent, evidence_salt)
    SELECT event_id, subject, salt, ip, user_agent, evidence_salt FROM event_personal;
DROP TABLE event_personal;
ALTER TABLE event_personal_new RENAME TO event_personal;

CREATE TABLE log_leaves_new (
    idx INTEGER PRIMARY KEY,
    event_id BIGINT REFERENCES events (id),
    version_id BIGINT REFERENCES versions (id),
    data TEXT NOT NULL
);
INSERT INTO log_leaves_new (idx, event_id, version_id, data) SELECT idx, event_id, version_id, data FROM log_leaves;
DROP TABLE log_leaves;
ALTER TABLE log_leaves_new RENAME TO log_leaves;
CREATE UNIQUE INDEX log_leaves_event ON log_leaves (event_id) WHERE event_id IS NOT NULL;
CREATE UNIQUE INDEX log_leaves_version ON log_leaves (version_id) WHERE version_id IS NOT NULL;

CREATE TABLE log_nodes_new (
    level INTEGER NOT NULL,
    idx BIGINT NOT NULL,
    hash TEXT NOT NULL,
    PRIMARY KEY (level, idx)
) WITHOUT ROWID;
INSERT INTO log_nodes_new (level, idx, hash) SELECT level, idx, hash FROM log_nodes;
DROP TABLE log_nodes;
ALTER TABLE log_nodes_new RENAME TO log_nodes;

