//! The names of an order's statuses, event kinds and directions, written once.
//!
//! Each enum is the record type on the topics (variant order and the `SCREAMING_SNAKE_CASE`
//! serde names follow the Avro schemas: Avro enums are encoded by position, and the schemas'
//! golden-bytes tests check it) and knows its lower-case name, the one PostgreSQL, the APIs and
//! derived ids use (`client_confirmed`). The status sets that several components ask about —
//! open, terminal, on the trader's list — are constants here rather than string lists in each.

use serde::{Deserialize, Serialize};

/// A name that is not one of the enum's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{name:?} is not a known {what}")]
pub struct UnknownName {
    pub what: &'static str,
    pub name: String,
}

/// An enum whose every variant has one lower-case name, parsed back by [`std::str::FromStr`].
macro_rules! named {
    ($(#[$doc:meta])* $name:ident, $what:literal { $($(#[$vdoc:meta])* $variant:ident => $text:literal,)+ }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "SCREAMING_SNAKE_CASE")]
        pub enum $name {
            $($(#[$vdoc])* $variant,)+
        }

        impl $name {
            /// Every variant, in the schema's order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The lower-case name, as stored in PostgreSQL and shown by the APIs.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = UnknownName;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err(UnknownName { what: $what, name: s.to_owned() }),
                }
            }
        }
    };
}

named!(
    /// Which way the money goes.
    Direction, "direction" {
        PayIn => "pay_in",
        PayOut => "pay_out",
    }
);

named!(
    /// What happened to an order (an event on `orders.events`).
    OrderEventKind, "order event kind" {
        Created => "created",
        Review => "review",
        Rejected => "rejected",
        NoRequisite => "no_requisite",
        Assigned => "assigned",
        ClientConfirmed => "client_confirmed",
        /// Pay-out: the trader says he has paid the customer.
        TraderPaid => "trader_paid",
        Completed => "completed",
        Cancelled => "cancelled",
        Expired => "expired",
        Disputed => "disputed",
        Resolved => "resolved",
        Failed => "failed",
    }
);

named!(
    /// Where an order stands.
    OrderStatus, "order status" {
        Created => "created",
        Review => "review",
        Rejected => "rejected",
        NoRequisite => "no_requisite",
        Assigned => "assigned",
        ClientConfirmed => "client_confirmed",
        /// Pay-out: the trader says he has paid the customer.
        TraderPaid => "trader_paid",
        Completed => "completed",
        Cancelled => "cancelled",
        Expired => "expired",
        Disputed => "disputed",
        Failed => "failed",
    }
);

impl OrderStatus {
    /// Statuses after which an order changes no more.
    pub const TERMINAL: &'static [OrderStatus] = &[
        OrderStatus::Completed,
        OrderStatus::Cancelled,
        OrderStatus::Expired,
        OrderStatus::Rejected,
        OrderStatus::NoRequisite,
        OrderStatus::Failed,
    ];

    /// Statuses in which an order may still change: every status that is not terminal.
    pub const OPEN: &'static [OrderStatus] = &[
        OrderStatus::Created,
        OrderStatus::Review,
        OrderStatus::Assigned,
        OrderStatus::ClientConfirmed,
        OrderStatus::TraderPaid,
        OrderStatus::Disputed,
    ];

    /// Open statuses in which the order is on its trader's list (the trader API and its
    /// stream show these).
    pub const WITH_TRADER: &'static [OrderStatus] = &[
        OrderStatus::Assigned,
        OrderStatus::ClientConfirmed,
        OrderStatus::Disputed,
    ];

    /// Statuses in which the payer is shown the requisite and may say "I have paid".
    pub const AWAITING_PAYMENT: &'static [OrderStatus] =
        &[OrderStatus::Assigned, OrderStatus::ClientConfirmed];

    pub fn is_terminal(self) -> bool {
        Self::TERMINAL.contains(&self)
    }

    /// Whether the stored name `status` is terminal (an unknown name is not).
    pub fn is_terminal_name(status: &str) -> bool {
        status.parse().is_ok_and(Self::is_terminal)
    }

    /// Whether the stored name `status` is one of `set`.
    pub fn name_in(status: &str, set: &[OrderStatus]) -> bool {
        status.parse().is_ok_and(|s| set.contains(&s))
    }

    /// The lower-case names of `set`, e.g. for a test or an SQL `IN` list built from constants.
    pub fn names(set: &[OrderStatus]) -> Vec<&'static str> {
        set.iter().map(|s| s.as_str()).collect()
    }

    /// `set` as an SQL list of literals, `'assigned', 'client_confirmed'`: for statements whose
    /// text must name the statuses (a partial index predicate, a plan that should not depend
    /// on a bound array). Built only from these constants, never from input.
    pub fn sql_list(set: &[OrderStatus]) -> String {
        set.iter()
            .map(|s| format!("'{}'", s.as_str()))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_back() {
        for s in OrderStatus::ALL {
            assert_eq!(s.as_str().parse::<OrderStatus>().unwrap(), *s);
        }
        for k in OrderEventKind::ALL {
            assert_eq!(k.as_str().parse::<OrderEventKind>().unwrap(), *k);
        }
        for d in Direction::ALL {
            assert_eq!(d.as_str().parse::<Direction>().unwrap(), *d);
        }
        assert!("CLIENT_CONFIRMED".parse::<OrderStatus>().is_err());
        assert!("".parse::<Direction>().is_err());
    }

    #[test]
    fn open_and_terminal_split_every_status() {
        for s in OrderStatus::ALL {
            assert_ne!(
                OrderStatus::OPEN.contains(s),
                OrderStatus::TERMINAL.contains(s),
                "{s}"
            );
        }
        for s in OrderStatus::WITH_TRADER
            .iter()
            .chain(OrderStatus::AWAITING_PAYMENT)
        {
            assert!(OrderStatus::OPEN.contains(s), "{s}");
        }
        assert!(OrderStatus::is_terminal_name("expired"));
        assert!(!OrderStatus::is_terminal_name("assigned"));
        assert!(!OrderStatus::is_terminal_name("no such status"));
    }

    #[test]
    fn every_status_is_an_event_kind_of_the_same_name() {
        for s in OrderStatus::ALL {
            assert!(s.as_str().parse::<OrderEventKind>().is_ok(), "{s}");
        }
    }

    #[test]
    fn sql_lists_quote_each_name() {
        assert_eq!(
            OrderStatus::sql_list(OrderStatus::WITH_TRADER),
            "'assigned', 'client_confirmed', 'disputed'"
        );
    }
}
