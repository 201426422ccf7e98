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

-- Row by row rather than per statement: a statement that changes nothing (revoking a key that
-- is not there) moves nothing, and no server reloads for it. A sync that publishes many rows
-- moves the generation once per row, and the notifications of one transaction, all alike,
-- arrive as one.
DROP TRIGGER api_keys_changed ON api_keys;
DROP TRIGGER documents_changed ON documents;
DROP TRIGGER versions_changed ON versions;
DROP TRIGGER webhook_endpoints_changed ON webhook_endpoints;
-- Not `last_used_at`, which servers write as keys are used.
CREATE TRIGGER api_keys_changed AFTER INSERT OR DELETE OR UPDATE OF revoked_at, scope, audience, key_hash, prefix, name
    ON api_keys FOR EACH ROW EXECUTE FUNCTION assent_changed();
CREATE TRIGGER documents_changed AFTER INSERT OR UPDATE OR DELETE
    ON documents FOR EACH ROW EXECUTE FUNCTION assent_changed();
CREATE TRIGGER versions_changed AFTER INSERT OR UPDATE OR DELETE
    ON versions FOR EACH ROW EXECUTE FUNCTION assent_changed();
CREATE TRIGGER webhook_endpoints_changed AFTER INSERT OR UPDATE OR DELETE
    ON webhook_endpoints FOR EACH ROW EXECUTE FUNCTION assent_changed();
