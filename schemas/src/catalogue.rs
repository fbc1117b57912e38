//! Every published schema version with its fixed id.
//!
//! Rules: an id is never reused or changed; a changed schema is a new file `v<N+1>.avsc` with a
//! new id appended here, and the old version stays (readers of old records still need it).

/// One version of one schema, as shipped in `schemas/avro/`.
#[derive(Debug)]
pub struct SchemaSource {
    /// The schema family: the folder name under `schemas/avro/`.
    pub name: &'static str,
    pub version: u32,
    /// The id written into every record's header (when no external registry is configured).
    pub id: u32,
    pub text: &'static str,
}

macro_rules! schema {
    ($name:literal, $version:literal, $id:literal) => {
        SchemaSource {
            name: $name,
            version: $version,
            id: $id,
            text: include_str!(concat!("../avro/", $name, "/v", $version, ".avsc")),
        }
    };
}

/// The schema of every record key: a string (store id, pool, trader id, order id, …).
pub const KEY_SCHEMA: &str = "key";

pub const SCHEMAS: &[SchemaSource] = &[
    schema!("key", 1, 1),
    schema!("order_requested", 1, 101),
    schema!("order_screened", 1, 102),
    schema!("order_routed", 1, 103),
    schema!("order_event", 1, 104),
    schema!("trader_command", 1, 105),
    schema!("ledger_transfer", 1, 106),
    schema!("store_posting", 1, 107),
    schema!("trader_posting", 1, 108),
    schema!("trader_capacity", 1, 109),
    schema!("trader", 1, 110),
    schema!("store", 1, 111),
    schema!("rate", 1, 112),
    schema!("setting", 1, 113),
    schema!("changelog", 1, 114),
    schema!("dead_letter", 1, 115),
    schema!("order_requested", 2, 116),
    schema!("order_screened", 2, 117),
    schema!("order_routed", 2, 118),
    schema!("changelog", 2, 119),
];
