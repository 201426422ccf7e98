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
