-- A leaf names an event or a version, never both: each unique index covers only the rows that
-- have the column, so an event's leaf adds no entry to the versions' index (and the reverse).
ALTER TABLE log_leaves DROP CONSTRAINT log_leaves_event_id_key;
ALTER TABLE log_leaves DROP CONSTRAINT log_leaves_version_id_key;
CREATE UNIQUE INDEX log_leaves_event ON log_leaves (event_id) WHERE event_id IS NOT NULL;
CREATE UNIQUE INDEX log_leaves_version ON log_leaves (version_id) WHERE version_id IS NOT NULL;
