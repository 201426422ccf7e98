-- Read-your-writes on every server (contract §11): whoever changes a key, a document, a
-- version or a webhook endpoint (a server, `assent sync`, `assent keys revoke`), every server
-- LISTENing on `assent_changes` hears of it when that transaction commits, and drops what it
-- cached. Requests never ask.
CREATE FUNCTION assent_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('assent_changes', TG_TABLE_NAME);
    RETURN NULL;
END
$$;

-- Not `last_used_at`, which servers write as keys are used.
CREATE TRIGGER api_keys_changed AFTER INSERT OR DELETE OR UPDATE OF revoked_at, scope, audience, key_hash, prefix, name
    ON api_keys FOR EACH STATEMENT EXECUTE FUNCTION assent_changed();
CREATE TRIGGER documents_changed AFTER INSERT OR UPDATE OR DELETE
    ON documents FOR EACH STATEMENT EXECUTE FUNCTION assent_changed();
CREATE TRIGGER versions_changed AFTER INSERT OR UPDATE OR DELETE
    ON versions FOR EACH STATEMENT EXECUTE FUNCTION assent_changed();
CREATE TRIGGER webhook_endpoints_changed AFTER INSERT OR UPDATE OR DELETE
    ON webhook_endpoints FOR EACH STATEMENT EXECUTE FUNCTION assent_changed();
