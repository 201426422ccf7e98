-- Not reversible: the first form of the ledger was dropped.
SELECT 1;
