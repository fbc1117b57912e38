//! How the trader book's changelog values are encoded. A value starts with a format byte:
//!
//! - `0x01`: Avro binary of the v1 schemas in `avro/` (`order_record.v1.avsc`,
//!   `trader_record.v1.avsc`), written today: about 130 bytes per open order.
//! - `{`: serde JSON of the same data, written before (about 450 bytes per open order); still
//!   read, so changelogs already in topics restore.
//!
//! A later schema takes the next byte, and its reader decodes `0x01` values with the v1 writer
//! schema. Avro with our own schema rather than a serde binary format (bincode, postcard):
//! every topic of the project is Avro already, so the schema documents the bytes in the same
//! language as the rest and evolves by the same rules (fields added with defaults), and
//! analysts' tools decode the value after the byte. Decimals are strings: exact, their scale
//! kept, and no bytes-decimal, which apache-avro up to 0.22 cannot resolve between schema
//! versions (docs/ARCHITECTURE.md). UUIDs are a plain `fixed(16)`: apache-avro 0.21 writes
//! its `uuid` logical type on `fixed` with a length prefix, not as the spec's 16 bytes.

use super::avro_value::{self as av, CodecError, Fields};
use super::changelog::OrderRecord;
use super::machine::OrderState;
use super::state::{OpenOrder, RecentIds, TraderState, Usage};
use super::Window;
use apache_avro::types::Value;
use apache_avro::Schema;
use jivapay_schemas::records::Direction;
use std::sync::LazyLock;

/// The format byte of Avro binary of the v1 schemas.
pub const AVRO_V1: u8 = 0x01;

static ORDER_V1: LazyLock<Schema> = LazyLock::new(|| {
    Schema::parse_str(include_str!("avro/order_record.v1.avsc")).expect("shipped schema parses")
});
static TRADER_V1: LazyLock<Schema> = LazyLock::new(|| {
    Schema::parse_str(include_str!("avro/trader_record.v1.avsc")).expect("shipped schema parses")
});

const STATES: [(OrderState, &str); 6] = [
    (OrderState::Assigned, "ASSIGNED"),
    (OrderState::ClientConfirmed, "CLIENT_CONFIRMED"),
    (OrderState::Disputed, "DISPUTED"),
    (OrderState::Completed, "COMPLETED"),
    (OrderState::Cancelled, "CANCELLED"),
    (OrderState::Expired, "EXPIRED"),
];
const DIRECTIONS: [(Direction, &str); 2] =
    [(Direction::PayIn, "PAY_IN"), (Direction::PayOut, "PAY_OUT")];

fn field(name: &str, value: Value) -> (String, Value) {
    (name.to_owned(), value)
}

/// Prefixes the Avro datum of `value` with the format byte.
fn write(schema: &Schema, value: Value) -> Vec<u8> {
    // The values are built from the state's own types above, so they always match their
    // schema (the tests encode every variant).
    let datum = apache_avro::to_avro_datum(schema, value).expect("state matches its schema");
    let mut out = Vec::with_capacity(1 + datum.len());
    out.push(AVRO_V1);
    out.extend_from_slice(&datum);
    out
}

/// The Avro datum after the format byte, or `None` for a JSON value.
fn read(bytes: &[u8], schema: &Schema) -> Result<Option<Value>, CodecError> {
    match bytes.first() {
        None => Err(CodecError::Empty),
        Some(b'{') => Ok(None),
        Some(&AVRO_V1) => {
            let mut datum = &bytes[1..];
            let value = apache_avro::from_avro_datum(schema, &mut datum, None)?;
            if !datum.is_empty() {
                return Err(CodecError::Trailing(datum.len()));
            }
            // apache-avro reads a union cut off by the end of the input as null rather than
            // failing, which would restore an order without its hold. Such a value encodes
            // longer than the bytes it was read from.
            let length = apache_avro::to_avro_datum(schema, value.clone())?.len();
            if length != bytes.len() - 1 {
                return Err(CodecError::Truncated);
            }
            Ok(Some(value))
        }
        Some(other) => Err(CodecError::UnknownFormat(*other)),
    }
}

pub fn encode_order(record: &OrderRecord) -> Vec<u8> {
    let order = av::optional(record.order.as_ref(), |o| {
        Value::Record(vec![
            field("state", av::symbol(&STATES, o.state)),
            field("sequence", Value::Int(o.sequence)),
            field("deadline", av::optional(o.deadline, Value::TimestampMillis)),
            field("requisite_id", av::uuid(&o.requisite_id)),
            field("store_id", av::uuid(&o.store_id)),
            field(
                "external_order_id",
                Value::String(o.external_order_id.clone()),
            ),
            field("direction", av::symbol(&DIRECTIONS, o.direction)),
            field("fiat_amount", av::decimal(&o.fiat_amount)),
            field("fiat_currency", Value::String(o.fiat_currency.clone())),
            field("payment_method", Value::String(o.payment_method.clone())),
            field("rate", av::decimal(&o.rate)),
            field("crypto_amount", av::decimal(&o.crypto_amount)),
        ])
    });
    let hold = av::optional(record.hold.as_ref(), av::decimal);
    write(
        &ORDER_V1,
        Value::Record(vec![field("order", order), field("hold", hold)]),
    )
}

pub fn decode_order(bytes: &[u8]) -> Result<OrderRecord, CodecError> {
    let Some(value) = read(bytes, &ORDER_V1)? else {
        return Ok(serde_json::from_slice(bytes)?);
    };
    let mut record = Fields::of(value, "OrderRecord")?;
    let order = match record.optional("order")? {
        None => None,
        Some(order) => {
            let mut o = Fields::of(order, "order")?;
            Some(OpenOrder {
                state: o.symbol("state", &STATES)?,
                sequence: o.int("sequence")?,
                deadline: o
                    .optional("deadline")?
                    .map(|v| av::as_long(v, "deadline"))
                    .transpose()?,
                requisite_id: o.uuid("requisite_id")?,
                store_id: o.uuid("store_id")?,
                external_order_id: o.string("external_order_id")?,
                direction: o.symbol("direction", &DIRECTIONS)?,
                fiat_amount: o.decimal("fiat_amount")?,
                fiat_currency: o.string("fiat_currency")?,
                payment_method: o.string("payment_method")?,
                rate: o.decimal("rate")?,
                crypto_amount: o.decimal("crypto_amount")?,
            })
        }
    };
    let hold = record
        .optional("hold")?
        .map(|v| av::as_decimal(v, "hold"))
        .transpose()?;
    Ok(OrderRecord { order, hold })
}

fn ids(ids: &RecentIds) -> Value {
    Value::Array(ids.ids().map(av::uuid).collect())
}

/// The trader's record: his state without the open orders and holds (they have their own).
pub fn encode_trader(state: &TraderState) -> Vec<u8> {
    let usage = state
        .usage
        .iter()
        .map(|(requisite_id, u)| {
            Value::Record(vec![
                field("requisite_id", av::uuid(requisite_id)),
                field("window_day", Value::Int(u.window.day)),
                field("window_month", Value::Int(u.window.month)),
                field("daily_turnover", av::decimal(&u.daily_turnover)),
                field("monthly_turnover", av::decimal(&u.monthly_turnover)),
                field("daily_count", Value::Int(u.daily_count)),
                field("monthly_count", Value::Int(u.monthly_count)),
                field(
                    "last_order_at",
                    av::optional(u.last_order_at, Value::TimestampMillis),
                ),
            ])
        })
        .collect();
    write(
        &TRADER_V1,
        Value::Record(vec![
            field("balance", av::decimal(&state.balance)),
            field("usage", Value::Array(usage)),
            // Kept in the schema, always empty: routed orders and postings are deduplicated
            // by origin now (`runtime/origins.rs`).
            field("seen_orders", Value::Array(Vec::new())),
            field("seen_commands", ids(&state.seen_commands)),
            field("seen_postings", Value::Array(Vec::new())),
            field("capacity_version", Value::Long(state.capacity_version)),
            field(
                "published_day",
                av::optional(state.published_day, Value::Int),
            ),
        ]),
    )
}

/// A trader's record. A JSON one may carry orders and holds (written before they had their
/// own records); an Avro one never does.
pub fn decode_trader(bytes: &[u8]) -> Result<TraderState, CodecError> {
    let Some(value) = read(bytes, &TRADER_V1)? else {
        return Ok(serde_json::from_slice(bytes)?);
    };
    let mut t = Fields::of(value, "TraderRecord")?;
    let mut usage = std::collections::BTreeMap::new();
    for item in t.array("usage")? {
        let mut u = Fields::of(item, "usage")?;
        let requisite_id = u.uuid("requisite_id")?;
        let counters = Usage {
            window: Window {
                day: u.int("window_day")?,
                month: u.int("window_month")?,
            },
            daily_turnover: u.decimal("daily_turnover")?,
            monthly_turnover: u.decimal("monthly_turnover")?,
            daily_count: u.int("daily_count")?,
            monthly_count: u.int("monthly_count")?,
            last_order_at: u
                .optional("last_order_at")?
                .map(|v| av::as_long(v, "last_order_at"))
                .transpose()?,
        };
        usage.insert(requisite_id, counters);
    }
    let mut seen = |name: &'static str| -> Result<RecentIds, CodecError> {
        t.array(name)?
            .into_iter()
            .map(|v| av::as_uuid(v, name))
            .collect()
    };
    let seen_commands = seen("seen_commands")?;
    Ok(TraderState {
        balance: t.decimal("balance")?,
        usage,
        seen_commands,
        capacity_version: t.long("capacity_version")?,
        published_day: t
            .optional("published_day")?
            .map(|v| av::as_int(v, "published_day"))
            .transpose()?,
        ..TraderState::default()
    })
}
