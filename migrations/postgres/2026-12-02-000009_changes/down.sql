DROP TRIGGER api_keys_changed ON api_keys;
DROP TRIGGER documents_changed ON documents;
DROP TRIGGER versions_changed ON versions;
DROP TRIGGER webhook_endpoints_changed ON webhook_endpoints;
DROP FUNCTION assent_changed();
