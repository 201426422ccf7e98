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
UPDATE subject_documents SET
    accepted_covers = (SELECT e.covers FROM events e
                       WHERE e.subject_key = subject_documents.subject_key
                         AND e.document = subject_documents.document AND e.kind = 'accepted'
                       ORDER BY e.seq DESC LIMIT 1),
    accepted_at = (SELECT e.recorded_at FROM events e
                   WHERE e.subject_key = subject_documents.subject_key
                     AND e.document = subject_documents.document AND e.kind = 'accepted'
                   ORDER BY e.seq DESC LIMIT 1)
WHERE highest_accepted IS NOT NULL;
CREATE INDEX subject_documents_accepted_at ON subject_documents (document, accepted_at);

-- How many agreement rows stand alike: the same latest decision, the same latest acceptance,
-- accepted on the same day. Coverage and stats sum these few groups instead of counting every
-- subject; the triggers below keep them in step with subject_documents in the same
-- transaction. document = '' and state = 'known' counts the known subjects (chain heads).
-- Rows of parts (never declined, never carrying an acceptance of their own) are not counted.
CREATE TABLE coverage_counts (
    document TEXT NOT NULL,
    state TEXT NOT NULL,
    accepted_covers TEXT NOT NULL,
    accepted_day TEXT NOT NULL,
    n BIGINT NOT NULL,
    PRIMARY KEY (document, state, accepted_covers, accepted_day)
);
INSERT INTO coverage_counts (document, state, accepted_covers, accepted_day, n)
SELECT document, state, COALESCE(accepted_covers, ''), COALESCE(substr(accepted_at, 1, 10), ''), count(*)
FROM subject_documents WHERE accepted_covers IS NOT NULL OR state = 'declined'
GROUP BY 1, 2, 3, 4;
INSERT INTO coverage_counts (document, state, accepted_covers, accepted_day, n)
SELECT '', 'known', '', '', count(*) FROM subject_heads;

CREATE TRIGGER coverage_on_insert AFTER INSERT ON subject_documents
WHEN NEW.accepted_covers IS NOT NULL OR NEW.state = 'declined'
BEGIN
    INSERT INTO coverage_counts (document, state, accepted_covers, accepted_day, n)
    VALUES (NEW.document, NEW.state, COALESCE(NEW.accepted_covers, ''), COALESCE(substr(NEW.accepted_at, 1, 10), ''), 1)
    ON CONFLICT (document, state, accepted_covers, accepted_day) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER coverage_on_delete AFTER DELETE ON subject_documents
WHEN OLD.accepted_covers IS NOT NULL OR OLD.state = 'declined'
BEGIN
    UPDATE coverage_counts SET n = n - 1
    WHERE document = OLD.document AND state = OLD.state AND accepted_covers = COALESCE(OLD.accepted_covers, '')
      AND accepted_day = COALESCE(substr(OLD.accepted_at, 1, 10), '');
    DELETE FROM coverage_counts
    WHERE document = OLD.document AND state = OLD.state AND accepted_covers = COALESCE(OLD.accepted_covers, '')
      AND accepted_day = COALESCE(substr(OLD.accepted_at, 1, 10), '') AND n = 0;
END;

CREATE TRIGGER coverage_on_update_old AFTER UPDATE ON subject_documents
WHEN (OLD.accepted_covers IS NOT NULL OR OLD.state = 'declined')
 AND (OLD.state IS NOT NEW.state OR OLD.accepted_covers IS NOT NEW.accepted_covers
      OR substr(OLD.accepted_at, 1, 10) IS NOT substr(NEW.accepted_at, 1, 10))
BEGIN
    UPDATE coverage_counts SET n = n - 1
    WHERE document = OLD.document AND state = OLD.state AND accepted_covers = COALESCE(OLD.accepted_covers, '')
      AND accepted_day = COALESCE(substr(OLD.accepted_at, 1, 10), '');
    DELETE FROM coverage_counts
    WHERE document = OLD.document AND state = OLD.state AND accepted_covers = COALESCE(OLD.accepted_covers, '')
      AND accepted_day = COALESCE(substr(OLD.accepted_at, 1, 10), '') AND n = 0;
END;

CREATE TRIGGER coverage_on_update_new AFTER UPDATE ON subject_documents
WHEN (NEW.accepted_covers IS NOT NULL OR NEW.state = 'declined')
 AND (OLD.state IS NOT NEW.state OR OLD.accepted_covers IS NOT NEW.accepted_covers
      OR substr(OLD.accepted_at, 1, 10) IS NOT substr(NEW.accepted_at, 1, 10))
BEGIN
    INSERT INTO coverage_counts (document, state, accepted_covers, accepted_day, n)
    VALUES (NEW.document, NEW.state, COALESCE(NEW.accepted_covers, ''), COALESCE(substr(NEW.accepted_at, 1, 10), ''), 1)
    ON CONFLICT (document, state, accepted_covers, accepted_day) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER coverage_known AFTER INSERT ON subject_heads
BEGIN
    INSERT INTO coverage_counts (document, state, accepted_covers, accepted_day, n) VALUES ('', 'known', '', '', 1)
    ON CONFLICT (document, state, accepted_covers, accepted_day) DO UPDATE SET n = n + 1;
END;
