-- The projection's and the ledger's tables grow by thousands of rows a minute from the first
-- order on. PostgreSQL's default re-analyzes a table after 10 % of it changed; until then a
-- plan cached while the table was small (a scan of all of it looked cheap) stays in use while
-- the table grows — in the benchmark that made trader lookups scan every order until an
-- autoanalyze came. Analyzing these after 2 % keeps their statistics, and the plans built on
-- them, close to their size. (How often autovacuum looks is the server's autovacuum_naptime:
-- a shorter one than the default minute was tried in the benchmark and cost more CPU than it
-- saved.)

ALTER TABLE orders SET (autovacuum_analyze_scale_factor = 0.02);
ALTER TABLE order_events SET (autovacuum_analyze_scale_factor = 0.02);
ALTER TABLE gateway_requests SET (autovacuum_analyze_scale_factor = 0.02);
ALTER TABLE ledger_transfers SET (autovacuum_analyze_scale_factor = 0.02);
ALTER TABLE ledger_entries SET (autovacuum_analyze_scale_factor = 0.02);
ALTER TABLE callback_deliveries SET (autovacuum_analyze_scale_factor = 0.02);
