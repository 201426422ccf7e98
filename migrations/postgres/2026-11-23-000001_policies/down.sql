DROP TABLE versions; DROP TABLE documents;
