-- The newest version of the agreement the subject accepted (since its last erasure, which
-- deletes these rows), so that an acceptance of an older version is refused without reading
-- the subject's events (contract §2: acceptance never moves backwards). NULL on rows of parts
-- and of agreements never accepted.
ALTER TABLE subject_documents ADD COLUMN highest_accepted INTEGER;
UPDATE subject_documents SET highest_accepted = (
    SELECT max(e.version) FROM events e
    WHERE e.subject_key = subject_documents.subject_key
      AND e.document = subject_documents.document
      AND e.kind = 'accepted'
      AND e.seq > COALESCE((SELECT max(x.seq) FROM events x
                            WHERE x.subject_key = subject_documents.subject_key AND x.kind = 'erased'), 0)
);
