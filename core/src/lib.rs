//! The shared core: the rules more than one component uses, so that no component has to
//! depend on another to reach them. It sits above `schemas` (a trader command is built as its
//! record) and below `platform` and the components:
//!
//! `domain` ← `schemas` ← `core` ← `platform` ← `ingest` | `processors` | `sinks` | `admin` ← `jivapay`
//!
//! Plain values (ids and their namespaces, money, status names and sets) are in `domain`; what
//! needs PostgreSQL, cryptography or the network is here. Errors are this crate's own types;
//! `platform` turns them into HTTP answers.

pub mod api_keys;
pub mod callback_url;
pub mod crypto;
pub mod signing_secret;
pub mod trader_commands;
pub mod validate;

pub use crypto::{CryptoError, DataKey};
