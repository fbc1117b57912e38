//! Who is calling and what they may do: login tokens (JWT), password hashing, the caller
//! extractor, and route permissions.

pub mod caller;
pub mod jwt;
pub mod password;
pub mod permissions;
pub mod role;

pub use caller::{Authorized, Caller, Need, Visibility};
pub use permissions::{Permission, Scope};
pub use role::Role;
