//! Every schema: a round trip through the wire codec, golden bytes (so an accidental schema or
//! type change fails here), enum order, and the codec's refusals.
//!
//! To accept an intended change of the golden bytes: `JIVAPAY_BLESS=1 cargo test -p jivapay-schemas`.

use jivapay_schemas::records::*;
use jivapay_schemas::{samples, CodecError, Record, SchemaRegistry, SCHEMAS};
use std::fmt::Debug;
use std::path::PathBuf;

fn registry() -> SchemaRegistry {
    SchemaRegistry::builtin().expect("shipped schemas parse")
}

fn golden_path(name: &str) -> PathBuf {
    // At run time: a test binary built from another checkout of the same sources is reused
    // from a shared target folder, and its compile-time path may no longer exist.
    PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or(env!("CARGO_MANIFEST_DIR").into()))
        .join("golden")
        .join(format!("{name}.hex"))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn check_golden(name: &str, bytes: &[u8]) {
    let path = golden_path(name);
    let actual = hex(bytes);
    if std::env::var_os("JIVAPAY_BLESS").is_some() {
        std::fs::write(&path, format!("{actual}\n")).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|_| panic!("{} missing; run with JIVAPAY_BLESS=1", path.display()));
    assert_eq!(actual, expected.trim(), "golden bytes of {name} changed");
}

fn round_trip<T: Record + PartialEq + Debug>(record: T) {
    let registry = registry();
    let bytes = registry.encode(&record).expect("encodes");
    let schema = registry.latest(T::SCHEMA).unwrap();
    assert_eq!(bytes[0], 0, "magic byte");
    assert_eq!(
        u32::from_be_bytes(bytes[1..5].try_into().unwrap()),
        schema.id
    );
    let decoded: T = registry.decode(&bytes).expect("decodes");
    assert_eq!(decoded, record);
    check_golden(T::SCHEMA, &bytes);
}

#[test]
fn order_requested() {
    round_trip(samples::order_requested());
    // The amount is optional (a missing amount sends the order to review).
    round_trip_only(OrderRequested {
        fiat_amount: None,
        ..samples::order_requested()
    });
}

#[test]
fn order_screened() {
    round_trip(samples::order_screened());
}

#[test]
fn order_routed() {
    round_trip(samples::order_routed());
}

#[test]
fn order_event() {
    round_trip(samples::order_event());
}

#[test]
fn trader_command() {
    round_trip(samples::trader_command());
}

#[test]
fn ledger_transfer() {
    let transfer = samples::ledger_transfer();
    assert!(transfer.is_balanced());
    round_trip(transfer);
}

#[test]
fn store_posting() {
    round_trip(samples::store_posting());
}

#[test]
fn trader_posting() {
    round_trip(samples::trader_posting());
}

#[test]
fn trader_capacity() {
    round_trip(samples::trader_capacity());
}

#[test]
fn trader() {
    round_trip(samples::trader());
}

#[test]
fn store() {
    round_trip(samples::store());
}

#[test]
fn rate() {
    round_trip(samples::rate());
}

#[test]
fn setting() {
    round_trip(samples::setting());
}

#[test]
fn changelog() {
    round_trip(samples::changelog());
    round_trip_only(ChangelogEntry {
        state: None,
        state_schema_id: None,
        writer: None,
        batch: None,
        ..samples::changelog()
    });
}

#[test]
fn dead_letter() {
    round_trip(samples::dead_letter());
}

#[test]
fn key() {
    let registry = registry();
    let bytes = registry.encode_key("RUB:sbp");
    assert_eq!(registry.decode_key(&bytes).unwrap(), "RUB:sbp");
    check_golden("key", &bytes);
    let long = "k".repeat(300); // a length that needs a two-byte varint
    assert_eq!(
        registry.decode_key(&registry.encode_key(&long)).unwrap(),
        long
    );
}

#[test]
fn every_shipped_schema_has_golden_bytes() {
    for source in SCHEMAS {
        assert!(
            golden_path(source.name).exists(),
            "no golden bytes for {}",
            source.name
        );
    }
}

fn round_trip_only<T: Record + PartialEq + Debug>(record: T) {
    let registry = registry();
    let decoded: T = registry.decode(&registry.encode(&record).unwrap()).unwrap();
    assert_eq!(decoded, record);
}

/// Avro enums are encoded by position: the Rust variants must list the schema's symbols in
/// order. Every variant goes through the codec inside a record and must come back unchanged.
#[test]
fn every_enum_variant_survives_the_codec() {
    use OrderEventKind as K;
    for kind in [
        K::Created,
        K::Review,
        K::Rejected,
        K::NoRequisite,
        K::Assigned,
        K::ClientConfirmed,
        K::TraderPaid,
        K::Completed,
        K::Cancelled,
        K::Expired,
        K::Disputed,
        K::Resolved,
        K::Failed,
    ] {
        round_trip_only(OrderEvent {
            kind,
            ..samples::order_event()
        });
    }
    use OrderStatus as S;
    for status in [
        S::Created,
        S::Review,
        S::Rejected,
        S::NoRequisite,
        S::Assigned,
        S::ClientConfirmed,
        S::TraderPaid,
        S::Completed,
        S::Cancelled,
        S::Expired,
        S::Disputed,
        S::Failed,
    ] {
        round_trip_only(OrderEvent {
            status,
            previous_status: Some(status),
            ..samples::order_event()
        });
    }
    for outcome in [
        CandidateOutcome::Chosen,
        CandidateOutcome::Skipped,
        CandidateOutcome::Refused,
    ] {
        let mut event = samples::order_event();
        event.candidates[0].outcome = outcome;
        round_trip_only(event);
    }
    for direction in [Direction::PayIn, Direction::PayOut] {
        round_trip_only(OrderRequested {
            direction,
            ..samples::order_requested()
        });
    }
    use TraderCommandKind as C;
    for kind in [
        C::ClientConfirmed,
        C::TraderConfirmed,
        C::ReportNonPayment,
        C::CancelOrder,
        C::ResolveDispute,
        C::Deposit,
        C::Withdraw,
    ] {
        round_trip_only(TraderCommand {
            kind,
            ..samples::trader_command()
        });
    }
    for resolution in [
        DisputeResolution::InFavourOfCustomer,
        DisputeResolution::InFavourOfTrader,
    ] {
        round_trip_only(TraderCommand {
            resolution: Some(resolution),
            ..samples::trader_command()
        });
    }
    use TransferKind as T;
    for kind in [
        T::PayIn,
        T::PayOut,
        T::Deposit,
        T::Withdrawal,
        T::DisputeResolution,
        T::Adjustment,
    ] {
        round_trip_only(LedgerTransfer {
            kind,
            ..samples::ledger_transfer()
        });
    }
    for (owner_kind, account_kind) in [
        (AccountOwnerKind::Store, AccountKind::Available),
        (AccountOwnerKind::Trader, AccountKind::Hold),
        (AccountOwnerKind::Platform, AccountKind::Fees),
        (AccountOwnerKind::External, AccountKind::Settlement),
    ] {
        let mut transfer = samples::ledger_transfer();
        transfer.entries[0].owner_kind = owner_kind;
        transfer.entries[0].account_kind = account_kind;
        round_trip_only(transfer);
    }
    use PostingKind as P;
    for kind in [P::Credit, P::Debit, P::Hold, P::Release, P::Capture] {
        round_trip_only(StorePosting {
            kind,
            ..samples::store_posting()
        });
        round_trip_only(TraderPosting {
            kind,
            ..samples::trader_posting()
        });
    }
    for kind in [
        RequisiteKind::Card,
        RequisiteKind::Phone,
        RequisiteKind::Account,
    ] {
        for status in [
            ModerationStatus::Pending,
            ModerationStatus::Approved,
            ModerationStatus::Rejected,
            ModerationStatus::Blocked,
        ] {
            let mut trader = samples::trader();
            trader.requisites[0].kind = kind;
            trader.requisites[0].moderation_status = status;
            round_trip_only(trader);
        }
    }
    use SettingType as V;
    for value_type in [
        V::Integer,
        V::Decimal,
        V::Boolean,
        V::String,
        V::DurationSecs,
        V::Json,
    ] {
        round_trip_only(Setting {
            value_type,
            ..samples::setting()
        });
    }
}

#[test]
fn money_keeps_its_scale_and_sign() {
    let mut transfer = samples::ledger_transfer();
    transfer.entries[0].amount = "-0.000001".parse().unwrap();
    transfer.entries[1].amount = "79228162514264.337593".parse().unwrap();
    round_trip_only(transfer);
}

#[test]
fn more_places_than_the_schema_allows_is_an_error_not_rounding() {
    let mut rate = samples::rate();
    rate.rate = "92.123456789".parse().unwrap(); // 9 places, the schema has 8
    assert!(registry().encode(&rate).is_err());
}

#[test]
fn refuses_unframed_unknown_and_mismatched_records() {
    let registry = registry();
    assert!(matches!(
        registry.decode::<Rate>(b"{\"json\":1}"),
        Err(CodecError::NotFramed)
    ));
    assert!(matches!(
        registry.decode::<Rate>(&[0, 0, 0, 0x7f, 0x7f, 1]),
        Err(CodecError::UnknownSchemaId(0x7f7f))
    ));
    let store = registry.encode(&samples::store()).unwrap();
    assert!(matches!(
        registry.decode::<Rate>(&store),
        Err(CodecError::WrongSchema { .. })
    ));
    let mut rate = registry.encode(&samples::rate()).unwrap();
    let truncated = &rate[..rate.len() - 3];
    assert!(registry.decode::<Rate>(truncated).is_err());
    rate.push(0);
    assert!(matches!(
        registry.decode::<Rate>(&rate),
        Err(CodecError::TrailingBytes(1))
    ));
}

/// UUIDs go on the wire as their 36-character text (Avro's `uuid` logical type on `string`),
/// which every Avro reader expects; raw 16 bytes would only round-trip through our own codec.
#[test]
fn uuids_are_written_as_text() {
    let registry = registry();
    let posting = samples::store_posting();
    let bytes = registry.encode(&posting).unwrap();
    let mut datum = &bytes[5..];
    // An Avro string: zig-zag length 36 (= 0x48), then the hyphenated text.
    assert_eq!(datum[0], 0x48);
    assert_eq!(
        &datum[1..37],
        posting.posting_id.hyphenated().to_string().as_bytes()
    );
    let schema = &registry.latest("store_posting").unwrap().schema;
    let value = apache_avro::from_avro_datum(schema, &mut datum, None).unwrap();
    let apache_avro::types::Value::Record(fields) = value else {
        panic!("a record")
    };
    assert_eq!(
        fields[0].1,
        apache_avro::types::Value::Uuid(posting.posting_id)
    );
}

/// Records written with v1 of a schema (before `expires_at`, `refusals`, `candidates`, and the
/// changelog's `writer` and `batch`)
/// still decode, with the new fields at their defaults: a processor upgraded mid-stream reads
/// what its predecessor wrote.
#[test]
fn v1_records_still_decode() {
    fn v1_bytes(name: &str) -> Vec<u8> {
        let text = std::fs::read_to_string(golden_path(&format!("{name}.v1"))).unwrap();
        let text = text.trim();
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
            .collect()
    }
    let registry = registry();
    let requested: OrderRequested = registry.decode(&v1_bytes("order_requested")).unwrap();
    assert_eq!(
        requested,
        OrderRequested {
            expires_at: None,
            ..samples::order_requested()
        }
    );
    let screened: OrderScreened = registry.decode(&v1_bytes("order_screened")).unwrap();
    assert_eq!(
        screened,
        OrderScreened {
            expires_at: None,
            refusals: vec![],
            ..samples::order_screened()
        }
    );
    let entry: ChangelogEntry = registry.decode(&v1_bytes("changelog")).unwrap();
    assert_eq!(
        entry,
        ChangelogEntry {
            writer: None,
            batch: None,
            ..samples::changelog()
        }
    );
    let routed: OrderRouted = registry.decode(&v1_bytes("order_routed")).unwrap();
    assert_eq!(
        routed,
        OrderRouted {
            expires_at: None,
            candidates: vec![],
            ..samples::order_routed()
        }
    );
}
