//! The management API's routes, one module per resource. Each handler declares its permission
//! with an `Authorized<…>` extractor and filters its queries by the caller's scope.

mod auth;
mod requisites;

use crate::state::AppState;
use axum::Router;

pub fn router() -> Router<AppState> {
    Router::new()
        .merge(auth::router())
        .merge(requisites::router())
}

/// Unix time now, in seconds.
pub(crate) fn now_secs() -> i64 {
    chrono::Utc::now().timestamp()
}
