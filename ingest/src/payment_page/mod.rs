//! The hosted payment page at `payment_url` (`/pay/{token}`), its JSON variant for merchants who
//! build their own page (`/api/v1/payment/{token}`), and the customer's "I have paid" with an
//! optional receipt (stored through [`receipts::ReceiptStore`]).
//! The token is the only credential: unguessable, one per order. This is the one place a full
//! requisite number is shown — to the payer, who must see it to pay.

pub mod confirm;
pub mod events;
mod html;
pub mod receipts;
pub mod view;

use crate::state::IngestState;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;

pub use receipts::ReceiptStore;

pub fn router() -> Router<IngestState> {
    Router::new().route("/pay/{token}", get(html::page)).route(
        "/pay/{token}/confirm",
        // The form carries the receipt: this limit replaces the router-wide one for this route
        // (the innermost `DefaultBodyLimit` wins); the file itself is held to 5 MiB.
        post(confirm::confirm_form).layer(DefaultBodyLimit::max(receipts::FORM_BODY_LIMIT_BYTES)),
    )
}
