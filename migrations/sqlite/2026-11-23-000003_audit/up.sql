-- Filtered event listings and exports walk events by id within a document or a kind.
CREATE INDEX events_document_id ON events (document, id);
CREATE INDEX events_kind_recorded_at ON events (kind, recorded_at);
-- Coverage counts come from the per-subject state, by document, state and version.
CREATE INDEX subject_documents_coverage ON subject_documents (document, state, version);
