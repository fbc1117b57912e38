//! Typed identifiers. Order ids are deterministic (UUIDv5 of their cause) so that a replayed
//! request or record produces the same id and every consumer can deduplicate on it.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::namespaces::IdPurpose;

/// The namespace of order ids: the root of the family in [`crate::namespaces`].
pub const JIVAPAY_NAMESPACE: Uuid = crate::namespaces::ROOT;

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[cfg_attr(feature = "sqlx", derive(sqlx::Type), sqlx(transparent))]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            pub fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl From<Uuid> for $name {
            fn from(id: Uuid) -> Self {
                Self(id)
            }
        }

        impl From<$name> for Uuid {
            fn from(id: $name) -> Uuid {
                id.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }

        impl std::str::FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }
    };
}

uuid_id!(
    /// A merchant's store: the unit that sends orders and holds a balance.
    StoreId
);
uuid_id!(
    /// A trader: holds a USDT deposit and owns requisites.
    TraderId
);
uuid_id!(
    /// A trader's requisite: the card, phone or account a customer pays to.
    RequisiteId
);
uuid_id!(
    /// An order (pay-in or pay-out), derived from the store and its external order id.
    OrderId
);

impl OrderId {
    /// The order id is UUIDv5 of the store id and the store's own order id, so the same
    /// request sent twice names the same order.
    pub fn derive(store: StoreId, external_order_id: &str) -> Self {
        let mut name = Vec::with_capacity(16 + external_order_id.len());
        name.extend_from_slice(store.0.as_bytes());
        name.extend_from_slice(external_order_id.as_bytes());
        Self(IdPurpose::Order.id(&name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_id_is_deterministic_and_store_scoped() {
        let a = StoreId(Uuid::from_u128(1));
        let b = StoreId(Uuid::from_u128(2));
        assert_eq!(OrderId::derive(a, "x-1"), OrderId::derive(a, "x-1"));
        assert_ne!(OrderId::derive(a, "x-1"), OrderId::derive(a, "x-2"));
        assert_ne!(OrderId::derive(a, "x-1"), OrderId::derive(b, "x-1"));
    }

    #[test]
    fn order_id_is_stable_across_releases() {
        // Stored order ids depend on this value: a change here is a breaking change.
        let store = StoreId(Uuid::from_u128(1));
        assert_eq!(
            OrderId::derive(store, "order-1").to_string(),
            "e937e4e6-e87a-5188-a416-cac798613ae2"
        );
        assert_eq!(OrderId::derive(store, "order-1").0.get_version_num(), 5);
    }
}
