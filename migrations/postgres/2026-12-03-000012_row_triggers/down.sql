DROP TRIGGER api_keys_changed ON api_keys;
DROP TRIGGER documents_changed ON documents;
DROP TRIGGER versions_changed ON versions;
DROP TRIGGER webhook_endpoints_changed ON webhook_endpoints;
CREATE TRIGGER api_keys_changed AFTER INSERT OR DELETE OR UPDATE OF revoked_at, scope, audience, key_hash, prefix, name
    ON api_keys FOR EACH STATEMENT EXECUTE FUNCTION assent_changed();
CREATE TRIGGER documents_changed AFTER INSERT OR UPDATE OR DELETE
    ON documents FOR EACH STATEMENT EXECUTE FUNCTION assent_changed();
CREATE TRIGGER versions_changed AFTER INSERT OR UPDATE OR DELETE
    ON versions FOR EACH STATEMENT EXECUTE FUNCTION assent_changed();
CREATE TRIGGER webhook_endpoints_changed AFTER INSERT OR UPDATE OR DELETE
    ON webhook_endpoints FOR EACH STATEMENT EXECUTE FUNCTION assent_changed();
