//! The gateway API for stores: create a pay-in, read an order's status; and the payment page's
//! JSON variant, by token (no API key: the token is the credential).

mod create;
pub mod journal;
mod status;

use crate::payment_page::{confirm, events, receipts, view};
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
        .route("/payment/{token}", get(view::json))
        .route("/payment/{token}/events", get(events::stream))
        .route("/payment/{token}/confirm", post(confirm::confirm_json))
        .route("/payment/{token}/receipt", post(receipts::receipt_json))
}
