-- The orders projection is rewritten four or more times per order (created, assigned, the
-- customer's and the trader's confirmations, ...). It carried thirteen indexes, and because
-- status appeared in several of them (as a key or in a partial predicate) every update was a
-- non-HOT update that inserted into all thirteen: the projection's upsert was PostgreSQL's
-- costliest statement in the benchmark (docs/benchmarks.md, run 5).
--
-- Indexes come with the queries that use them. Today orders are read by id, by payment token,
-- by (store, external order id) and as a trader's open list; the listings and statistics the
-- other indexes were made for (per store, requisite, status, review queue, deadlines) add
-- theirs with the query API that serves them. The open list's index now says "not closed"
-- instead of naming statuses, so an update that changes only the status (the customer's
-- confirmation) touches no indexed column and can be a HOT update, for which the table keeps
-- free room on its pages (fillfactor).

DROP INDEX orders_open_by_requisite_idx;
DROP INDEX orders_open_by_trader_idx;
DROP INDEX orders_open_expires_idx;
DROP INDEX orders_review_queue_idx;
DROP INDEX orders_store_created_idx;
DROP INDEX orders_trader_created_idx;
DROP INDEX orders_requisite_created_idx;
DROP INDEX orders_created_idx;
DROP INDEX orders_status_created_idx;
DROP INDEX orders_store_customer_idx;

-- A trader's open orders, oldest first (admin/src/routes/trader_orders). Partial, so it stays
-- small however many closed orders accumulate.
CREATE INDEX orders_unclosed_by_trader_idx ON orders (trader_id, created_at)
    WHERE closed_at IS NULL AND trader_id IS NOT NULL;

ALTER TABLE orders SET (fillfactor = 80);
