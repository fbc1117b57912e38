//! The payment as a stream of server-sent events (`/api/v1/payment/{token}/events`): the
//! current [`PaymentView`] at once, then again each time the order's status changes, until it
//! reaches a final status. A page or app learns that a requisite was found, or that the
//! payment completed, the moment the projection commits it, without polling.
//!
//! Each event is `event: payment` with the view as JSON `data`. The stream also ends after
//! [`MAX_STREAM`] (EventSource clients reconnect by themselves) so no connection is held
//! forever for an order that stays open.

use super::view::{load, PaymentView};
use crate::state::IngestState;
use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use jivapay_domain::OrderStatus;
use jivapay_platform::http::error::ApiResult;
use jivapay_platform::http::path::Path;
use jivapay_platform::order_changes::{Notice, Watch};
use std::convert::Infallible;
use std::time::Duration;
use tokio::time::Instant;

/// The longest one stream stays open.
pub const MAX_STREAM: Duration = Duration::from_secs(10 * 60);

fn event(view: &PaymentView) -> Event {
    // A view is plain data: serialising it cannot fail; an empty event would do no harm.
    Event::default()
        .event("payment")
        .json_data(view)
        .unwrap_or_default()
}

/// What one stream holds between events.
struct Feed {
    state: IngestState,
    token: String,
    watch: Watch,
    /// A view loaded and not yet compared with what was sent.
    pending: Option<PaymentView>,
    /// The status last sent.
    sent: Option<String>,
    until: Instant,
}

impl Feed {
    /// The next event, or `None` when the stream is over.
    async fn next(mut self) -> Option<(Result<Event, Infallible>, Self)> {
        loop {
            if let Some(view) = self.pending.take() {
                if self.sent.as_deref() != Some(view.status.as_str()) {
                    self.sent = Some(view.status.clone());
                    return Some((Ok(event(&view)), self));
                }
            }
            if self
                .sent
                .as_deref()
                .is_some_and(OrderStatus::is_terminal_name)
            {
                return None;
            }
            let notice = tokio::select! {
                notice = self.watch.next() => notice,
                _ = tokio::time::sleep_until(self.until) => return None,
            };
            // A notice naming the status already shown changes nothing the payer sees.
            if let Notice::Changed(change) = &notice {
                if self.sent.as_deref() == Some(change.status.as_str()) {
                    continue;
                }
            }
            match load(&self.state, &self.token).await {
                Ok(view) => self.pending = Some(view),
                Err(_) => {
                    tracing::warn!("payment stream cannot reload its view; the client reconnects");
                    return None;
                }
            }
        }
    }
}

pub async fn stream(
    State(state): State<IngestState>,
    Path(token): Path<String>,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    let first = load(&state, &token).await?;
    let watch = state.changes.watch_order(first.order_id);
    // Loaded again once watched: a change committed between the first load and the watch
    // would otherwise be missed until the next one.
    let view = load(&state, &token).await?;
    let feed = Feed {
        state,
        token,
        watch,
        pending: Some(view),
        sent: None,
        until: Instant::now() + MAX_STREAM,
    };
    let events = futures::stream::unfold(feed, Feed::next);
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}
