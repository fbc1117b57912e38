//! The gateway API for stores: create a pay-in, read an order's status.

mod create;
mod status;

use crate::state::IngestState;
use axum::routing::{get, post};
use axum::Router;

pub fn router() -> Router<IngestState> {
    Router::new()
        .route("/payins", post(create::create_payin))
        .route("/orders/{order_id}", get(status::by_id))
        .route(
            "/orders/external/{external_order_id}",
            get(status::by_external_id),
        )
}
