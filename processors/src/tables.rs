//! Master data for the processors, read from the compacted topics (`traders`, `stores`,
//! `rates`, `settings`, `trader.capacity`) as live tables: every instance holds them whole and
//! sees changes as they are published.

use crate::core::{pool, MasterData};
use jivapay_domain::{StoreId, TraderId};
use jivapay_platform::kafka::{Broker, Table, TableError};
use jivapay_schemas::records::{Rate, Setting, Store, Trader, TraderCapacity};
use jivapay_schemas::topics::{RATES, SETTINGS, STORES, TRADERS, TRADER_CAPACITY};
use jivapay_schemas::SchemaRegistry;
use tokio_util::sync::CancellationToken;

pub struct TableMasterData {
    traders: Table<Trader>,
    stores: Table<Store>,
    rates: Table<Rate>,
    settings: Table<Setting>,
    capacities: Table<TraderCapacity>,
}

impl TableMasterData {
    /// Starts following every master-data topic until `stop`.
    pub async fn start(
        broker: &Broker,
        registry: &SchemaRegistry,
        stop: CancellationToken,
    ) -> Result<Self, TableError> {
        Ok(Self {
            traders: Table::start(broker, registry.clone(), TRADERS, stop.clone()).await?,
            stores: Table::start(broker, registry.clone(), STORES, stop.clone()).await?,
            rates: Table::start(broker, registry.clone(), RATES, stop.clone()).await?,
            settings: Table::start(broker, registry.clone(), SETTINGS, stop.clone()).await?,
            capacities: Table::start(broker, registry.clone(), TRADER_CAPACITY, stop).await?,
        })
    }
}

impl MasterData for TableMasterData {
    fn trader(&self, trader_id: TraderId) -> Option<Trader> {
        self.traders.get(&trader_id.to_string())
    }

    fn traders_in_pool(&self, wanted: &str) -> Vec<Trader> {
        let mut traders: Vec<Trader> = self.traders.read(|rows| {
            rows.values()
                .filter(|t| {
                    t.requisites
                        .iter()
                        .any(|r| pool(&r.fiat_currency, &r.payment_method) == wanted)
                })
                .cloned()
                .collect()
        });
        traders.sort_by_key(|t| t.trader_id);
        traders
    }

    fn store(&self, store_id: StoreId) -> Option<Store> {
        self.stores.get(&store_id.to_string())
    }

    fn rate(&self, fiat_currency: &str) -> Option<Rate> {
        self.rates.get(fiat_currency)
    }

    fn setting(&self, key: &str) -> Option<Setting> {
        self.settings.get(key)
    }

    fn capacity(&self, trader_id: TraderId) -> Option<TraderCapacity> {
        self.capacities.get(&trader_id.to_string())
    }
}
