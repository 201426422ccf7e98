-- PostgreSQL gains the generation row that SQLite has had since 000009: nothing to do here.
SELECT 1;
