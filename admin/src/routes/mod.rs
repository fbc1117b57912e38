//! The management API's routes, one module per resource. Each handler declares its permission
//! with an `Authorized<…>` extractor and filters its queries by the caller's scope.

mod audit_log;
pub mod auth;
pub mod callback_deliveries;
mod dead_letters;
mod merchants;
mod reference;
mod requisites;
mod settings;
pub mod stores;
mod teams;
pub mod trader_orders;
mod traders;
mod users;

use crate::state::AppState;
use axum::Router;

pub fn router() -> Router<AppState> {
    Router::new()
        .merge(auth::router())
        .merge(users::router())
        .merge(merchants::router())
        .merge(stores::router())
        .merge(teams::router())
        .merge(traders::router())
        .merge(trader_orders::router())
        .merge(requisites::router())
        .merge(reference::router())
        .merge(settings::router())
        .merge(audit_log::router())
        .merge(callback_deliveries::router())
        .merge(dead_letters::router())
}

/// Unix time now, in seconds.
pub(crate) fn now_secs() -> i64 {
    chrono::Utc::now().timestamp()
}
