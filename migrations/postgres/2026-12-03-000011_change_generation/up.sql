-- A generation that moves with every change that `assent_changes` announces, as SQLite's
-- does. Notifications are the fast path; each server also reads this about once a second, so
-- that a notification it could not hear (a connection that died silently, a pooler such as
-- PgBouncer in transaction mode, which does not pass LISTEN through) still reaches it.
CREATE TABLE assent_changes (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    generation BIGINT NOT NULL
);
INSERT INTO assent_changes (id, generation) VALUES (1, 0);

CREATE OR REPLACE FUNCTION assent_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE assent_changes SET generation = generation + 1 WHERE id = 1;
    PERFORM pg_notify('assent_changes', TG_TABLE_NAME);
    RETURN NULL;
END
$$;
