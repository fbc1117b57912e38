//! "I have paid": the customer's confirmation becomes a CLIENT_CONFIRMED command for the trader
//! book (key = trader), with the key of the receipt when one was uploaded. The command id is
//! derived from the order, so pressing the button twice is one confirmation. Only an assigned
//! order within its payment window can be confirmed: the command carries the time it was
//! accepted, and a confirmation accepted before the deadline wins over the expiry timer however
//! late the trader book reads it (ARCHITECTURE principle 8).
//!
//! The page's form is `multipart/form-data` with an optional file field `receipt` (see
//! [`super::receipts`]); a form without a file (or an older, url-encoded one) confirms without
//! a receipt.

use super::receipts::{self, is_length_limit, too_large, MAX_RECEIPT_BYTES};
use super::view::{load, PaymentView};
use crate::state::IngestState;
use axum::body::Bytes;
use axum::extract::multipart::MultipartError;
use axum::extract::{FromRequest, Multipart, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::Json;
use jivapay_core::trader_commands;
use jivapay_domain::OrderStatus;
use jivapay_platform::http::error::{ApiError, ApiResult};
use jivapay_platform::http::path::Path;
use serde_json::{json, Value};
use uuid::Uuid;

/// Name of the form's file field.
pub const RECEIPT_FIELD: &str = "receipt";

/// The trader to send the confirmation to, or 409 `not_confirmable`.
pub(crate) fn confirmable(view: &PaymentView) -> ApiResult<Uuid> {
    match (view.can_confirm, view.trader_id) {
        (true, Some(trader)) => Ok(trader),
        _ => Err(not_confirmable(view)),
    }
}

fn not_confirmable(view: &PaymentView) -> ApiError {
    // Still assigned, so its payment window is what closed.
    let message = if view.status == OrderStatus::Assigned.as_str() {
        "the payment window has closed".to_owned()
    } else {
        format!("the payment is {} and cannot be confirmed now", view.status)
    };
    ApiError::new(StatusCode::CONFLICT, "not_confirmable", message)
}

/// Sends CLIENT_CONFIRMED for a confirmable `view` (see [`confirmable`]).
pub(crate) async fn confirm_with_receipt(
    state: &IngestState,
    view: &PaymentView,
    trader_id: Uuid,
    receipt_key: Option<&str>,
) -> ApiResult<()> {
    // The book judges the confirmation by this stamp against the payment window, however
    // late it reads it: one stamped at the deadline or after it would be refused there.
    let issued_at = chrono::Utc::now().timestamp_millis();
    if issued_at >= view.expires_at.timestamp_millis() {
        return Err(not_confirmable(view));
    }
    let command =
        trader_commands::client_confirmed(view.order_id, trader_id, receipt_key, issued_at);
    jivapay_platform::trader_commands::send(&state.producer, &command).await
}

pub async fn confirm_json(
    State(state): State<IngestState>,
    Path(token): Path<String>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let view = load(&state, &token).await?;
    let trader_id = confirmable(&view)?;
    confirm_with_receipt(&state, &view, trader_id, None).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"status": "confirmation_received"})),
    ))
}

/// The file of the form's `receipt` field, if one was chosen, and its declared type. Other
/// fields are ignored. At most [`MAX_RECEIPT_BYTES`] are kept; a larger file is read to the end
/// of the form (the route's body limit caps that) and refused with 413, so the browser sees the
/// answer.
async fn receipt_field(mut form: Multipart) -> ApiResult<Option<(Bytes, Option<String>)>> {
    let mut found = None;
    let mut too_big = false;
    while let Some(mut field) = form.next_field().await.map_err(multipart_error)? {
        let is_receipt = field.name() == Some(RECEIPT_FIELD) && found.is_none();
        let chose_a_file = field.file_name().is_some_and(|n| !n.is_empty());
        let content_type = field.content_type().map(str::to_owned);
        let mut bytes = Vec::new();
        let mut size = 0usize;
        while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
            size += chunk.len();
            if is_receipt && size <= MAX_RECEIPT_BYTES {
                bytes.extend_from_slice(&chunk);
            }
        }
        if !is_receipt {
            continue;
        }
        if size > MAX_RECEIPT_BYTES {
            too_big = true;
        } else if chose_a_file || !bytes.is_empty() {
            // A form sent without choosing a file still has the part: empty, no file name.
            found = Some((Bytes::from(bytes), content_type));
        }
    }
    if too_big {
        return Err(too_large());
    }
    Ok(found)
}

fn multipart_error(error: MultipartError) -> ApiError {
    if error.status() == StatusCode::PAYLOAD_TOO_LARGE || is_length_limit(&error) {
        too_large()
    } else {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_form",
            "the form could not be read",
        )
    }
}

/// Confirms from the page's form: the order is checked first, then the receipt (if any) is
/// read, checked and stored, then the command is sent.
async fn confirm_form_request(state: &IngestState, token: &str, request: Request) -> ApiResult<()> {
    let view = load(state, token).await?;
    let trader_id = confirmable(&view)?;
    let is_multipart = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .to_ascii_lowercase()
                .starts_with("multipart/form-data")
        });
    let receipt = if is_multipart {
        let form = Multipart::from_request(request, state).await.map_err(|_| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_form",
                "the form could not be read",
            )
        })?;
        receipt_field(form).await?
    } else {
        None
    };
    let key = match receipt {
        Some((bytes, content_type)) => Some(
            receipts::store_customer_receipt(state, view.order_id, bytes, content_type.as_deref())
                .await?
                .key,
        ),
        None => None,
    };
    confirm_with_receipt(state, &view, trader_id, key.as_deref()).await
}

/// The page's form: back to the page, which then shows the new state (or why not). A refused
/// receipt gets a short page with the reason, the status code of the refusal, and a way back.
pub async fn confirm_form(
    State(state): State<IngestState>,
    Path(token): Path<String>,
    request: Request,
) -> Response {
    match confirm_form_request(&state, &token, request).await {
        Ok(()) => Redirect::to(&format!("/pay/{token}?confirmed=1")).into_response(),
        Err(e) if e.code == "not_confirmable" => {
            Redirect::to(&format!("/pay/{token}")).into_response()
        }
        Err(e) if e.status.is_client_error() => (
            e.status,
            Html(super::html::refused(&token, e.code, &e.message)),
        )
            .into_response(),
        Err(e) => e.into_response(),
    }
}
