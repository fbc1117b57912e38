-- The ledger's checks look rows up by key: a transfer by id, its entries by the primary key's
-- prefix. PL/pgSQL caches the plans of its queries for the life of a connection, and plans
-- made while the ledger tables were still empty read them whole; such a plan stayed in use as
-- the tables grew until an ANALYZE invalidated it, so a fresh database's first minutes of
-- load made every COMMIT of the ledger sink slower than the last (found in the benchmark:
-- 2 ms per check instead of 0.1). Without sequential scans the planner takes the keys,
-- whatever the statistics say.

ALTER FUNCTION ledger_assert_transfer_balanced(uuid) SET enable_seqscan = off;
ALTER FUNCTION ledger_entries_join_new_transfers() SET enable_seqscan = off;
