//! The changelog's encodings: the size of an open order's record, and restores from the JSON
//! records written before the Avro ones, from Avro ones and from a mix.

use super::changelog::OrderRecord;
use super::changelog_codec::{decode_order, decode_trader, encode_order, encode_trader};
use super::fixtures::*;
use super::machine::OrderState;
use super::{OpenOrder, TraderBookProcessor, TraderState, RECENT_IDS};
use crate::core::{Input, Processor};
use jivapay_schemas::records::{
    ChangelogEntry, Direction, OrderRouted, PostingKind, TraderCommandKind as K,
};
use jivapay_schemas::SchemaRegistry;
use uuid::Uuid;

type Changelog = Vec<(String, Option<Vec<u8>>)>;

/// A pay-in as it arrives from `orders.routed`: decimals at their schema's scale, a merchant's
/// UUID as external order id. Amounts differ per order (a requisite's open amounts must).
fn realistic(n: u128) -> OrderRouted {
    let mut r = routed(n, &format!("{}.50", 5000 + n));
    r.external_order_id =
        Uuid::from_u128(0x8e1f_0c3a_55d2_4b6e_9a47_d1c2_7f30_aa00 + n).to_string();
    r.rate = d("92.45670000");
    r.crypto_amount = UsdtAmount::rounded(r.fiat_amount.value() / r.rate);
    r
}

/// A trader with every kind of state: orders assigned, confirmed by the customer and
/// completed awaiting capture (a hold without an order), counters, postings, a refusal.
fn busy_book() -> Book {
    let mut b = Book::new();
    b.deposit("100000", T0 - SEC);
    for n in 1..=6 {
        let (_, o) = b.explain(Input::Routed(realistic(n)), T0);
        assert_eq!(o, super::Outcome::Applied);
    }
    b.apply(order_command(1, K::ClientConfirmed, 1), T0 + SEC);
    b.apply(order_command(2, K::TraderConfirmed, 2), T0 + SEC);
    b.apply(order_command(3, K::CancelOrder, 3), T0 + SEC);
    b.apply(Input::Routed(routed(7, "600000")), T0 + SEC); // refused: over the maximum
    b.apply(
        Input::TraderPosting(posting(1, PostingKind::Credit, None, "1.5")),
        T0 + SEC,
    );
    b
}

/// The same state as the code before this format wrote it: the trader without orders and
/// holds as JSON, and each open order's record as JSON, under the same keys.
fn as_json(state: &TraderState) -> Changelog {
    let mut core = serde_json::to_value(state).unwrap();
    let core_fields = core.as_object_mut().unwrap();
    core_fields.remove("orders");
    core_fields.remove("holds");
    let mut out = vec![(TRADER.to_string(), Some(serde_json::to_vec(&core).unwrap()))];
    let ids: std::collections::BTreeSet<Uuid> = state
        .open_orders()
        .map(|(id, _)| *id)
        .chain(state.holds.keys().copied())
        .collect();
    for id in ids {
        let record = OrderRecord {
            order: state.open_order(id.into()).cloned(),
            hold: state.hold(id.into()),
        };
        out.push((
            format!("{TRADER}/order/{id}"),
            Some(serde_json::to_vec(&record).unwrap()),
        ));
    }
    out
}

fn restored(b: &Book, changelog: &Changelog) -> TraderBookProcessor {
    let mut book = b.fresh();
    for (key, value) in changelog {
        book.restore(key, value.as_deref());
    }
    book
}

/// Kafka key and value bytes of the runtime's state record around a state (for the record
/// only: the envelope, with its copy of the key, is the runtime's and the same for every
/// processor; the covered offsets are the decision log's, once per partition and batch).
fn on_the_topic(key: &str, state: &[u8]) -> usize {
    let registry = SchemaRegistry::builtin().unwrap();
    let entry = ChangelogEntry {
        state_key: key.to_owned(),
        state: Some(state.to_vec()),
        state_schema_id: None,
        covered_offsets: Vec::new(),
        marker: None,
        written_at: T0,
        writer: None,
        batch: None,
    };
    registry.encode_key(key).len() + registry.encode(&entry).unwrap().len()
}

#[test]
fn an_open_order_record_with_its_key_stays_within_256_bytes() {
    let mut b = busy_book();
    let changes = export(&mut b.book);
    let state = b.trader_state().unwrap();
    for id in [order_id(1), order_id(4)] {
        let key = format!("{TRADER}/order/{id}");
        let (_, value) = changes.iter().find(|(k, _)| *k == key).unwrap();
        let value = value.as_ref().unwrap();
        let bytes = key.len() + value.len();
        let record = OrderRecord {
            order: state.open_order(id).cloned(),
            hold: state.hold(id),
        };
        let json = key.len() + serde_json::to_vec(&record).unwrap().len();
        eprintln!(
            "open order record: {bytes} bytes (key {}), as JSON {json}; on the topic {}",
            key.len(),
            on_the_topic(&key, value),
        );
        assert!(bytes <= 256, "{bytes} bytes per open order");
    }
    let trader = changes.iter().find(|(k, _)| *k == TRADER.to_string());
    let avro = trader.and_then(|(_, v)| v.as_ref()).map_or(0, Vec::len);
    let json = as_json(state)[0].1.as_ref().map_or(0, Vec::len);
    eprintln!("trader record: {avro} bytes, as JSON {json}");
    let mut full = state.clone();
    for n in 0..RECENT_IDS as u128 {
        full.seen_commands.remember(Uuid::from_u128(n));
    }
    eprintln!(
        "trader record with a full command list: {} bytes, as JSON {}",
        encode_trader(&full).len(),
        as_json(&full)[0].1.as_ref().map_or(0, Vec::len)
    );
    eprintln!(
        "in memory: OpenOrder {} bytes inline",
        std::mem::size_of::<OpenOrder>()
    );
}

#[test]
fn json_and_avro_changelogs_restore_the_same_state_and_continue_alike() {
    let mut b = busy_book();
    let avro = export(&mut b.book);
    let json = as_json(b.trader_state().unwrap());
    assert!(avro.iter().all(|(_, v)| v.as_ref().unwrap()[0] == 0x01));
    assert!(json.iter().all(|(_, v)| v.as_ref().unwrap()[0] == b'{'));
    let keys = |c: &Changelog| c.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>();
    assert_eq!(keys(&avro), keys(&json));
    // An upgrade mid-life: the trader already in Avro, some orders still in JSON.
    let mixed: Changelog = avro
        .iter()
        .zip(&json)
        .enumerate()
        .map(|(n, (a, j))| if n % 2 == 0 { a.clone() } else { j.clone() })
        .collect();
    let mut books: Vec<TraderBookProcessor> = [&avro, &json, &mixed]
        .into_iter()
        .map(|changelog| restored(&b, changelog))
        .collect();
    for book in &books {
        assert_eq!(book.trader(TRADER), b.trader_state());
    }
    let next = [
        (Input::Routed(realistic(8)), T0 + 2 * SEC),
        (order_command(4, K::TraderConfirmed, 1), T0 + 2 * SEC),
        (order_command(5, K::ClientConfirmed, 4), T0 + 3 * SEC),
        (order_command(1, K::ClientConfirmed, 1), T0 + 3 * SEC), // replay
    ];
    for (input, now) in next {
        let want = b.book.apply(input.clone(), now);
        for book in &mut books {
            assert_eq!(book.apply(input.clone(), now), want, "{input:?}");
        }
    }
    let want = b.book.tick(T0 + 2000 * SEC);
    assert!(!want.is_empty(), "timers fired");
    let changes = export(&mut b.book);
    for book in &mut books {
        assert_eq!(book.tick(T0 + 2000 * SEC), want);
        assert_eq!(book.take_changes(), changes);
    }
}

#[test]
fn every_order_state_and_direction_round_trips() {
    let b = busy_book();
    let state = b.trader_state().unwrap();
    let (_, order) = state.open_orders().next().unwrap();
    for s in OrderState::ALL {
        for direction in [Direction::PayIn, Direction::PayOut] {
            for (deadline, hold) in [(Some(T0), Some(d("1.000001"))), (None, None)] {
                let record = OrderRecord {
                    order: Some(OpenOrder {
                        state: s,
                        direction,
                        deadline,
                        ..order.clone()
                    }),
                    hold,
                };
                assert_eq!(decode_order(&encode_order(&record)).unwrap(), record);
            }
        }
    }
    let hold_only = OrderRecord {
        order: None,
        hold: Some(d("54.079416")),
    };
    assert_eq!(decode_order(&encode_order(&hold_only)).unwrap(), hold_only);
}

#[test]
fn a_trader_record_round_trips_with_full_dedup_lists_and_keeps_decimal_scales() {
    let mut b = busy_book();
    for n in 0..200u128 {
        b.apply(
            Input::TraderPosting(posting(100 + n, PostingKind::Credit, None, "0.10")),
            T0,
        );
    }
    let state = b.trader_state().unwrap();
    let back = decode_trader(&encode_trader(state)).unwrap();
    let without_orders = TraderState {
        orders: Default::default(),
        holds: Default::default(),
        ..state.clone()
    };
    assert_eq!(back, without_orders);
    assert_eq!(back.balance().to_string(), state.balance().to_string());
}

#[test]
fn unknown_formats_and_damaged_values_are_refused_not_misread() {
    let b = busy_book();
    let state = b.trader_state().unwrap();
    let record = OrderRecord {
        order: state.open_order(order_id(1)).cloned(),
        hold: state.hold(order_id(1)),
    };
    let good = encode_order(&record);
    assert!(decode_order(&[]).is_err());
    assert!(decode_order(&[0x02, 0x00]).is_err(), "a later format");
    for cut in 0..good.len() {
        // apache-avro alone reads some of these cuts as a record without its hold.
        assert!(decode_order(&good[..cut]).is_err(), "cut after {cut} bytes");
    }
    let mut longer = good.clone();
    longer.push(0);
    assert!(decode_order(&longer).is_err(), "trailing bytes");
    assert!(decode_trader(&good).is_err(), "an order is not a trader");

    // The processor skips an unreadable value and keeps what it had.
    let mut book = restored(&b, &as_json(state));
    let key = format!("{TRADER}/order/{}", order_id(1));
    book.restore(&key, Some(&[0x7f, 1, 2]));
    assert_eq!(book.trader(TRADER), Some(state));
}
