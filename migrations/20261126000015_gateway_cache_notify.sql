-- The gateway keeps API keys and per-pool checks in memory for a short time (ingest/src/cache.rs)
-- instead of asking PostgreSQL on every request. Any change that could make a cached answer
-- wrong notifies channel `jivapay_gateway_cache` at commit, and every gateway drops its cache.
-- Statement-level: one notification per statement (PostgreSQL folds duplicates per transaction).

CREATE FUNCTION gateway_cache_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('jivapay_gateway_cache', TG_TABLE_NAME);
    RETURN NULL;
END
$$;

-- Not on last_used_at: the gateway itself touches it.
CREATE TRIGGER store_api_keys_gateway_cache
    AFTER INSERT OR DELETE OR UPDATE OF store_id, key_hash, expires_at, revoked_at ON store_api_keys
    FOR EACH STATEMENT EXECUTE FUNCTION gateway_cache_notify();
-- Not on the callback columns the callback sink maintains.
CREATE TRIGGER stores_gateway_cache
    AFTER INSERT OR DELETE OR UPDATE OF merchant_id, is_enabled, pay_in_enabled ON stores
    FOR EACH STATEMENT EXECUTE FUNCTION gateway_cache_notify();
CREATE TRIGGER merchants_gateway_cache
    AFTER INSERT OR DELETE OR UPDATE OF is_enabled ON merchants
    FOR EACH STATEMENT EXECUTE FUNCTION gateway_cache_notify();
CREATE TRIGGER currencies_gateway_cache
    AFTER INSERT OR DELETE OR UPDATE ON currencies
    FOR EACH STATEMENT EXECUTE FUNCTION gateway_cache_notify();
CREATE TRIGGER payment_methods_gateway_cache
    AFTER INSERT OR DELETE OR UPDATE ON payment_methods
    FOR EACH STATEMENT EXECUTE FUNCTION gateway_cache_notify();
CREATE TRIGGER payment_method_currencies_gateway_cache
    AFTER INSERT OR DELETE OR UPDATE ON payment_method_currencies
    FOR EACH STATEMENT EXECUTE FUNCTION gateway_cache_notify();
