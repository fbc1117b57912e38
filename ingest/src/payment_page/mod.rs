//! The hosted payment page at `payment_url` (`/pay/{token}`), its JSON variant for merchants who
//! build their own page (`/api/v1/payment/{token}`), and the customer's "I have paid".
//! The token is the only credential: unguessable, one per order. This is the one place a full
//! requisite number is shown — to the payer, who must see it to pay.

pub mod confirm;
mod html;
pub mod view;

use crate::state::IngestState;
use axum::routing::{get, post};
use axum::Router;

pub fn router() -> Router<IngestState> {
    Router::new()
        .route("/pay/{token}", get(html::page))
        .route("/pay/{token}/confirm", post(confirm::confirm_form))
}
