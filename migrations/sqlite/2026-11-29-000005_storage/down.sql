-- The data stays; only the storage layout changed, and the previous layout reads the same rows.
SELECT 1;
