//! The trader's orders as a stream of server-sent events (`GET /trader/orders/events`), so a
//! trader's app sees a new order, or the customer's "I have paid", the moment the projection
//! commits it instead of reloading the list:
//!
//! - `event: snapshot` — the open orders, as `GET /trader/orders` lists them; sent first, and
//!   again whenever the stream may have missed a change (it fell behind, or the server's
//!   listener reconnected). The client replaces its list.
//! - `event: order` — one of the trader's orders whose status changed, in any status; the
//!   client updates it, or drops it once the status is no longer open (`is_open` below).
//!
//! Only the caller's own orders are ever sent. The stream ends after [`MAX_STREAM`], so a
//! revoked login or permission stops it within that time (EventSource clients reconnect, and
//! are authorized again).

use super::{is_open, one_order, open_orders, trader_of, OpenOrder, TraderOrders};
use crate::auth::Authorized;
use crate::state::AppState;
use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use jivapay_platform::http::error::ApiResult;
use jivapay_platform::order_changes::{Notice, Watch};
use serde::Serialize;
use std::collections::HashMap;
use std::convert::Infallible;
use std::time::Duration;
use tokio::time::Instant;
use uuid::Uuid;

/// The longest one stream stays open.
pub const MAX_STREAM: Duration = Duration::from_secs(5 * 60);

fn event(name: &str, data: &impl Serialize) -> Event {
    // Plain data: serialising it cannot fail; an empty event would do no harm.
    Event::default()
        .event(name)
        .json_data(data)
        .unwrap_or_default()
}

/// What one stream holds between events.
struct Feed {
    state: AppState,
    trader: Uuid,
    watch: Watch,
    /// The status last sent of each open order on the client's list.
    sent: HashMap<Uuid, String>,
    /// Send a snapshot before anything else.
    resync: bool,
    until: Instant,
}

impl Feed {
    async fn snapshot(&mut self) -> sqlx::Result<Event> {
        let orders = open_orders(&self.state, self.trader).await?;
        self.sent = orders
            .iter()
            .map(|o| (o.order_id, o.status.clone()))
            .collect();
        Ok(event("snapshot", &orders))
    }

    /// The order's event if its status is news to the client.
    async fn update(&mut self, order_id: Uuid) -> sqlx::Result<Option<Event>> {
        let Some(order): Option<OpenOrder> = one_order(&self.state, self.trader, order_id).await?
        else {
            return Ok(None);
        };
        let news = self.sent.get(&order_id) != Some(&order.status);
        if is_open(&order.status) {
            self.sent.insert(order_id, order.status.clone());
        } else if self.sent.remove(&order_id).is_none() {
            // Closed before the client ever saw it open: nothing to take off its list.
            return Ok(None);
        }
        Ok(news.then(|| event("order", &order)))
    }

    /// The next event, or `None` when the stream is over.
    async fn next(mut self) -> Option<(Result<Event, Infallible>, Self)> {
        loop {
            let sent = if self.resync {
                self.resync = false;
                self.snapshot().await.map(Some)
            } else {
                let notice = tokio::select! {
                    notice = self.watch.next() => notice,
                    _ = tokio::time::sleep_until(self.until) => return None,
                };
                match notice {
                    Notice::Resync => {
                        self.resync = true;
                        continue;
                    }
                    // The status the client already has: nothing to reload.
                    Notice::Changed(change)
                        if self.sent.get(&change.order_id) == Some(&change.status) =>
                    {
                        continue
                    }
                    Notice::Changed(change) => self.update(change.order_id).await,
                }
            };
            match sent {
                Ok(Some(event)) => return Some((Ok(event), self)),
                Ok(None) => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "trader order stream cannot reload; the client reconnects");
                    return None;
                }
            }
        }
    }
}

pub async fn stream(
    State(state): State<AppState>,
    auth: Authorized<TraderOrders>,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    let trader = trader_of(&auth)?;
    // Watched before the first snapshot is read, so no change falls between the two.
    let watch = state.changes.watch_trader(trader);
    let feed = Feed {
        state,
        trader,
        watch,
        sent: HashMap::new(),
        resync: true,
        until: Instant::now() + MAX_STREAM,
    };
    Ok(Sse::new(futures::stream::unfold(feed, Feed::next)).keep_alive(KeepAlive::default()))
}
