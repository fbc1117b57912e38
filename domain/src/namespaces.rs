//! The one family of UUIDv5 namespaces behind every deterministic id.
//!
//! A deterministic id is UUIDv5 of its cause, so a replayed request or record names the same
//! thing and every consumer deduplicates on it. Each purpose has its own namespace, so two
//! purposes never give the same id for the same name, and they are all listed here, under one
//! root.
//!
//! The root is the order namespace itself (an order id is UUIDv5(root, store id ‖ external
//! order id)). The other namespaces predate the family and are pinned to the values they always
//! had: processor output ids sit in the ledger and in changelogs, command ids in the trader
//! book's changelog (its memory of commands seen), so a new value would make a replayed input
//! or a repeated click a new transfer or a new command. A purpose added from now on derives its
//! namespace from the root — `Uuid::new_v5(&ROOT, b"<purpose>")` — and pins the result here
//! with the others (the tests check that they stay distinct).

use uuid::Uuid;

/// The root of the family (a fixed, random UUID; never change it: every stored order id
/// depends on it).
pub const ROOT: Uuid = Uuid::from_u128(0x6a1d_4c1e_9f0b_4d7a_b3a5_2c8e_71f4_0d93);

/// What a deterministic id is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IdPurpose {
    /// Orders, derived from the store and its own order id.
    Order,
    /// Everything a processor derives: events, transfers, postings.
    ProcessorOutput,
    /// Commands the trader API sends for a trader (confirm, report non-payment).
    TraderApiCommand,
    /// The payment page's CLIENT_CONFIRMED command, sent for the customer.
    PaymentPageCommand,
}

impl IdPurpose {
    pub const ALL: [IdPurpose; 4] = [
        IdPurpose::Order,
        IdPurpose::ProcessorOutput,
        IdPurpose::TraderApiCommand,
        IdPurpose::PaymentPageCommand,
    ];

    /// The purpose's namespace.
    pub const fn namespace(self) -> Uuid {
        match self {
            IdPurpose::Order => ROOT,
            IdPurpose::ProcessorOutput => {
                Uuid::from_u128(0x5a17_0c3e_8d2b_4f61_a0e4_7b9c_3d18_62f5)
            }
            IdPurpose::TraderApiCommand => {
                Uuid::from_u128(0x2f6a_9b31_7e0c_4d55_8c2e_41a9_6b7d_03f1)
            }
            IdPurpose::PaymentPageCommand => {
                Uuid::from_u128(0x7c1e_4e4a_2b0d_4f3b_9a61_3f0e_5d2c_8a17)
            }
        }
    }

    /// The id of `name` (the cause, as bytes) for this purpose.
    pub fn id(self, name: &[u8]) -> Uuid {
        Uuid::new_v5(&self.namespace(), name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces_are_distinct() {
        for (i, a) in IdPurpose::ALL.iter().enumerate() {
            for b in &IdPurpose::ALL[i + 1..] {
                assert_ne!(a.namespace(), b.namespace(), "{a:?} and {b:?}");
            }
        }
    }

    #[test]
    fn pinned_values_never_change() {
        // Stored ids depend on these: a change here is a breaking change.
        assert_eq!(
            IdPurpose::Order.namespace().to_string(),
            "6a1d4c1e-9f0b-4d7a-b3a5-2c8e71f40d93"
        );
        assert_eq!(
            IdPurpose::ProcessorOutput.id(b"x").to_string(),
            Uuid::new_v5(
                &Uuid::from_u128(0x5a17_0c3e_8d2b_4f61_a0e4_7b9c_3d18_62f5),
                b"x"
            )
            .to_string()
        );
        assert_eq!(
            IdPurpose::TraderApiCommand.namespace().as_u128(),
            0x2f6a_9b31_7e0c_4d55_8c2e_41a9_6b7d_03f1
        );
        assert_eq!(
            IdPurpose::PaymentPageCommand.namespace().as_u128(),
            0x7c1e_4e4a_2b0d_4f3b_9a61_3f0e_5d2c_8a17
        );
    }
}
