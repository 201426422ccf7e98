ALTER TABLE subject_documents DROP COLUMN highest_accepted;
