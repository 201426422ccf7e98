DROP INDEX log_leaves_event;
DROP INDEX log_leaves_version;
ALTER TABLE log_leaves ADD CONSTRAINT log_leaves_event_id_key UNIQUE (event_id);
ALTER TABLE log_leaves ADD CONSTRAINT log_leaves_version_id_key UNIQUE (version_id);
