-- Back to the covers text in every row, and the idempotency key's unique constraint on all events.
DROP TRIGGER coverage_on_insert ON subject_documents;
DROP TRIGGER coverage_on_delete ON subject_documents;
DROP TRIGGER coverage_on_update ON subject_documents;

ALTER TABLE events ADD COLUMN covers TEXT;
UPDATE events e SET covers = c.covers FROM covers_sets c WHERE c.id = e.covers_id;
ALTER TABLE events ALTER COLUMN covers SET NOT NULL, DROP COLUMN covers_id;
DROP INDEX events_idempotency;
ALTER TABLE events ADD CONSTRAINT events_subject_key_idempotency_key_key UNIQUE (subject_key, idempotency_key);

ALTER TABLE subject_documents ADD COLUMN covers TEXT, ADD COLUMN accepted_covers TEXT;
UPDATE subject_documents d SET covers = (SELECT covers FROM covers_sets WHERE id = d.covers_id),
    accepted_covers = (SELECT covers FROM covers_sets WHERE id = d.accepted_covers_id);
ALTER TABLE subject_documents ALTER COLUMN covers SET NOT NULL, DROP COLUMN covers_id, DROP COLUMN accepted_covers_id;
DROP TABLE covers_sets;

CREATE OR REPLACE FUNCTION assent_coverage_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') AND (OLD.accepted_covers IS NOT NULL OR OLD.state = 'declined') THEN
        INSERT INTO coverage_changes VALUES (OLD.document, OLD.state, COALESCE(OLD.accepted_covers, ''),
            COALESCE(to_char(OLD.accepted_at, 'YYYY-MM-DD'), ''), -1);
    END IF;
    IF TG_OP IN ('UPDATE', 'INSERT') AND (NEW.accepted_covers IS NOT NULL OR NEW.state = 'declined') THEN
        INSERT INTO coverage_changes VALUES (NEW.document, NEW.state, COALESCE(NEW.accepted_covers, ''),
            COALESCE(to_char(NEW.accepted_at, 'YYYY-MM-DD'), ''), 1);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER coverage_on_insert AFTER INSERT ON subject_documents
FOR EACH ROW WHEN (NEW.accepted_covers IS NOT NULL OR NEW.state = 'declined')
EXECUTE FUNCTION assent_coverage_change();
CREATE TRIGGER coverage_on_delete AFTER DELETE ON subject_documents
FOR EACH ROW WHEN (OLD.accepted_covers IS NOT NULL OR OLD.state = 'declined')
EXECUTE FUNCTION assent_coverage_change();
CREATE TRIGGER coverage_on_update AFTER UPDATE ON subject_documents
FOR EACH ROW WHEN ((OLD.accepted_covers IS NOT NULL OR OLD.state = 'declined'
                    OR NEW.accepted_covers IS NOT NULL OR NEW.state = 'declined')
                   AND (OLD.state IS DISTINCT FROM NEW.state OR OLD.accepted_covers IS DISTINCT FROM NEW.accepted_covers
                        OR OLD.accepted_at::date IS DISTINCT FROM NEW.accepted_at::date))
EXECUTE FUNCTION assent_coverage_change();
