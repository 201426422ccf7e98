DROP INDEX subject_documents_coverage;
DROP INDEX events_kind_recorded_at;
DROP INDEX events_document_id;
