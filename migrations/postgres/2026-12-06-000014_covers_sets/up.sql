-- A smaller ledger, continued (issue 13: bytes per event). What an event covers (a JSON list of
-- documents, versions and hashes, some 150 bytes) repeats across thousands of events alike, so
-- it is stored once, in covers_sets, and events and status rows refer to it by id. The text is
-- unchanged, and so is what the chain commits to. The text is not a unique key: an insert that
-- met another transaction's uncommitted insert of the same text would wait for it, outside the
-- order in which writers take their subjects' locks, and two batches could deadlock; two
-- writers that add one text at once store it twice instead (`db::ledger::covers_id`). It is
-- found through a hash index, which, unlike a btree, takes a text of any length. No foreign
-- key points at covers_sets: every decision would lock the shared row it refers to (concurrent
-- writers then share that lock through multixacts); `verify` names an id that points nowhere.
-- Besides, the idempotency key's unique index holds only the events that have one. A dropped
-- column's bytes stay in the rows until the table is rewritten (README: Upgrading).
CREATE TABLE covers_sets (
    id BIGSERIAL PRIMARY KEY,
    covers TEXT NOT NULL
);
CREATE INDEX covers_sets_covers ON covers_sets USING hash (covers);
INSERT INTO covers_sets (covers)
SELECT covers FROM events UNION SELECT covers FROM subject_documents
UNION SELECT accepted_covers FROM subject_documents WHERE accepted_covers IS NOT NULL ORDER BY 1;
ANALYZE covers_sets;

DROP TRIGGER coverage_on_insert ON subject_documents;
DROP TRIGGER coverage_on_delete ON subject_documents;
DROP TRIGGER coverage_on_update ON subject_documents;

ALTER TABLE events ADD COLUMN covers_id BIGINT;
UPDATE events e SET covers_id = c.id FROM covers_sets c WHERE c.covers = e.covers;
ALTER TABLE events ALTER COLUMN covers_id SET NOT NULL, DROP COLUMN covers;
ALTER TABLE events DROP CONSTRAINT events_subject_key_idempotency_key_key;
CREATE UNIQUE INDEX events_idempotency ON events (subject_key, idempotency_key) WHERE idempotency_key IS NOT NULL;

ALTER TABLE subject_documents ADD COLUMN covers_id BIGINT, ADD COLUMN accepted_covers_id BIGINT;
UPDATE subject_documents d SET covers_id = (SELECT id FROM covers_sets WHERE covers = d.covers),
    accepted_covers_id = (SELECT id FROM covers_sets WHERE covers = d.accepted_covers);
ALTER TABLE subject_documents ALTER COLUMN covers_id SET NOT NULL, DROP COLUMN covers, DROP COLUMN accepted_covers;

-- The counts keep the text of what the acceptances covered (they are few, and read by it).
CREATE OR REPLACE FUNCTION assent_coverage_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') AND (OLD.accepted_covers_id IS NOT NULL OR OLD.state = 'declined') THEN
        INSERT INTO coverage_changes VALUES (OLD.document, OLD.state,
            COALESCE((SELECT covers FROM covers_sets WHERE id = OLD.accepted_covers_id), ''),
            COALESCE(to_char(OLD.accepted_at, 'YYYY-MM-DD'), ''), -1);
    END IF;
    IF TG_OP IN ('UPDATE', 'INSERT') AND (NEW.accepted_covers_id IS NOT NULL OR NEW.state = 'declined') THEN
        INSERT INTO coverage_changes VALUES (NEW.document, NEW.state,
            COALESCE((SELECT covers FROM covers_sets WHERE id = NEW.accepted_covers_id), ''),
            COALESCE(to_char(NEW.accepted_at, 'YYYY-MM-DD'), ''), 1);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER coverage_on_insert AFTER INSERT ON subject_documents
FOR EACH ROW WHEN (NEW.accepted_covers_id IS NOT NULL OR NEW.state = 'declined')
EXECUTE FUNCTION assent_coverage_change();
CREATE TRIGGER coverage_on_delete AFTER DELETE ON subject_documents
FOR EACH ROW WHEN (OLD.accepted_covers_id IS NOT NULL OR OLD.state = 'declined')
EXECUTE FUNCTION assent_coverage_change();
CREATE TRIGGER coverage_on_update AFTER UPDATE ON subject_documents
FOR EACH ROW WHEN ((OLD.accepted_covers_id IS NOT NULL OR OLD.state = 'declined'
                    OR NEW.accepted_covers_id IS NOT NULL OR NEW.state = 'declined')
                   AND (OLD.state IS DISTINCT FROM NEW.state OR OLD.accepted_covers_id IS DISTINCT FROM NEW.accepted_covers_id
                        OR OLD.accepted_at::date IS DISTINCT FROM NEW.accepted_at::date))
EXECUTE FUNCTION assent_coverage_change();
