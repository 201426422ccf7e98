-- Audiences and periodic re-acceptance (contract §1, §6): per version, the audiences it applies
-- to (comma-separated, sorted; NULL: everyone) and `reaccept_after` in seconds.
ALTER TABLE versions ADD COLUMN audiences TEXT;
ALTER TABLE versions ADD COLUMN reaccept_after BIGINT;
-- An API key may be bound to one audience.
ALTER TABLE api_keys ADD COLUMN audience TEXT;

-- A subject's latest acceptance of an agreement, kept through a later decline or withdrawal:
-- what it covered and when it was made. Status, coverage and stats read it (NULL on rows of
-- parts, and on agreements the subject never accepted).
ALTER TABLE subject_documents ADD COLUMN accepted_covers TEXT;
ALTER TABLE subject_documents ADD COLUMN accepted_at TIMESTAMP;
UPDATE subject_documents sd SET (accepted_covers, accepted_at) = (
    SELECT e.covers, e.recorded_at FROM events e
    WHERE e.subject_key = sd.subject_key AND e.document = sd.document AND e.kind = 'accepted'
    ORDER BY e.seq DESC LIMIT 1)
WHERE highest_accepted IS NOT NULL;
CREATE INDEX subject_documents_accepted_at ON subject_documents (document, accepted_at);

-- How many agreement rows stand alike: the same latest decision, the same latest acceptance,
-- accepted on the same day. Coverage and stats sum these few groups instead of counting every
-- subject. document = '' and state = 'known' counts the known subjects (chain heads). Rows of
-- parts (never declined, never carrying an acceptance of their own) are not counted.
CREATE TABLE coverage_counts (
    document TEXT NOT NULL,
    state TEXT NOT NULL,
    accepted_covers TEXT NOT NULL,
    accepted_day TEXT NOT NULL,
    n BIGINT NOT NULL,
    PRIMARY KEY (document, state, accepted_covers, accepted_day)
);
INSERT INTO coverage_counts (document, state, accepted_covers, accepted_day, n)
SELECT document, state, COALESCE(accepted_covers, ''), COALESCE(to_char(accepted_at, 'YYYY-MM-DD'), ''), count(*)
FROM subject_documents WHERE accepted_covers IS NOT NULL OR state = 'declined'
GROUP BY 1, 2, 3, 4;
INSERT INTO coverage_counts (document, state, accepted_covers, accepted_day, n)
SELECT '', 'known', '', '', count(*) FROM subject_heads;

-- Concurrent writers would queue on (and could deadlock over) the shared counts, so on
-- PostgreSQL the triggers only append changes here, which takes no lock anyone else waits
-- for; readers add them to the counts, and the server folds them in every few seconds
-- (`db::coverage::fold`), in one statement.
CREATE TABLE coverage_changes (
    document TEXT NOT NULL,
    state TEXT NOT NULL,
    accepted_covers TEXT NOT NULL,
    accepted_day TEXT NOT NULL,
    n BIGINT NOT NULL
);
-- No index: it holds a few seconds of changes, and every index would cost each write.

CREATE FUNCTION assent_coverage_change() RETURNS trigger LANGUAGE plpgsql AS $$
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

-- The rows of parts (never declined, never carrying an acceptance of their own) are not counted,
-- and the conditions say so before any function is called.
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

CREATE FUNCTION assent_known_subject() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO coverage_changes VALUES ('', 'known', '', '', 1);
    RETURN NULL;
END $$;
CREATE TRIGGER coverage_known AFTER INSERT ON subject_heads FOR EACH ROW EXECUTE FUNCTION assent_known_subject();
