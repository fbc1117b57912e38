//! Domain types shared by every component: identifiers (and the namespaces they derive from),
//! money, and the names of order statuses, event kinds and directions.
//!
//! Values are parsed into these types at the edge (HTTP, topics, database) so that the rest of
//! the code cannot confuse a store id with a trader id, or fiat with USDT.

pub mod ids;
pub mod money;
pub mod namespaces;
pub mod order;

pub use ids::{OrderId, RequisiteId, StoreId, TraderId};
pub use money::{Currency, FiatAmount, MoneyError, ParseAmountError, UsdtAmount};
pub use namespaces::IdPurpose;
pub use order::{Direction, OrderEventKind, OrderStatus};
