-- The zero-sum check of a transfer ran once per entry and once more per transfer at COMMIT
-- (ledger_entries_balanced and ledger_transfers_balanced, both deferred and per row): a pay-in
-- of four entries was checked five times, three queries each, which made COMMIT the ledger
-- sink's costliest statement in the benchmark (docs/benchmarks.md, run 5). The check itself is
-- unchanged (ledger_assert_transfer_balanced); it now runs once per transfer, from the
-- transfer's deferred trigger, which sees every entry written in the transaction.
--
-- What the entries' trigger guarded besides, an entry added later to a committed transfer, is
-- refused outright: entries may only join a transfer created in the same transaction, checked
-- once per INSERT statement over its new rows. (A transfer created inside a savepoint carries
-- the subtransaction's id and would be refused too: our writers use none.)

DROP TRIGGER ledger_entries_balanced ON ledger_entries;
DROP FUNCTION ledger_entries_check_balanced();

CREATE FUNCTION ledger_entries_join_new_transfers() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_transfer uuid;
BEGIN
    -- A lookup by primary key per new entry. (Written as a join, the planner, which has no
    -- statistics for a transition table, chose a hash join over a scan of every transfer.)
    SELECT e.transfer_id INTO v_transfer
    FROM new_entries e
    WHERE (SELECT t.xmin FROM ledger_transfers t WHERE t.id = e.transfer_id)
          <> pg_current_xact_id()::xid
    LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'ledger transfer % is already committed: no entry can be added to it',
                v_transfer
            USING ERRCODE = 'check_violation', CONSTRAINT = 'ledger_transfer_complete',
                  TABLE = 'ledger_entries',
                  HINT = 'Correct a transfer with a new, compensating transfer.';
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER ledger_entries_join_new_transfers
    AFTER INSERT ON ledger_entries
    REFERENCING NEW TABLE AS new_entries
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_entries_join_new_transfers();
