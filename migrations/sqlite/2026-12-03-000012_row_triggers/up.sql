-- PostgreSQL's change triggers become row-level; SQLite's have been since 000009: nothing to do.
SELECT 1;
