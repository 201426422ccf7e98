-- Read-your-writes on every server (contract §11): a generation that moves whenever a key, a
-- document, a version or a webhook endpoint changes, whoever changed it (a server, `assent
-- sync`, `assent keys revoke`). Each server watches it on a connection of its own and drops
-- what it cached when it moves; requests never ask.
CREATE TABLE assent_changes (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    generation BIGINT NOT NULL
);
INSERT INTO assent_changes (id, generation) VALUES (1, 0);

CREATE TRIGGER api_keys_inserted AFTER INSERT ON api_keys
BEGIN UPDATE assent_changes SET generation = generation + 1; END;
-- Not `last_used_at`, which servers write as keys are used.
CREATE TRIGGER api_keys_updated AFTER UPDATE OF revoked_at, scope, audience, key_hash, prefix, name ON api_keys
BEGIN UPDATE assent_changes SET generation = generation + 1; END;
CREATE TRIGGER api_keys_deleted AFTER DELETE ON api_keys
BEGIN UPDATE assent_changes SET generation = generation + 1; END;
CREATE TRIGGER documents_inserted AFTER INSERT ON documents
BEGIN UPDATE assent_changes SET generation = generation + 1; END;
CREATE TRIGGER documents_updated AFTER UPDATE ON documents
BEGIN UPDATE assent_changes SET generation = generation + 1; END;
CREATE TRIGGER documents_deleted AFTER DELETE ON documents
BEGIN UPDATE assent_changes SET generation = generation + 1; END;
CREATE TRIGGER versions_inserted AFTER INSERT ON versions
BEGIN UPDATE assent_changes SET generation = generation + 1; END;
CREATE TRIGGER versions_updated AFTER UPDATE ON versions
BEGIN UPDATE assent_changes SET generation = generation + 1; END;
CREATE TRIGGER versions_deleted AFTER DELETE ON versions
BEGIN UPDATE assent_changes SET generation = generation + 1; END;
CREATE TRIGGER webhook_endpoints_inserted AFTER INSERT ON webhook_endpoints
BEGIN UPDATE assent_changes SET generation = generation + 1; END;
CREATE TRIGGER webhook_endpoints_updated AFTER UPDATE ON webhook_endpoints
BEGIN UPDATE assent_changes SET generation = generation + 1; END;
CREATE TRIGGER webhook_endpoints_deleted AFTER DELETE ON webhook_endpoints
BEGIN UPDATE assent_changes SET generation = generation + 1; END;
