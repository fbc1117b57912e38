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

use super::{is_open, open_orders, some_orders, trader_of, TraderOrders};
use crate::auth::Authorized;
use crate::state::AppState;
use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use jivapay_platform::http::error::ApiResult;
use jivapay_platform::order_changes::{Notice, Watch};
use serde::Serialize;
use std::collections::{HashMap, VecDeque};
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
    /// Events read and not yet sent.
    ready: VecDeque<Event>,
    /// Send a snapshot before anything else.
    resync: bool,
    until: Instant,
}

impl Feed {
    async fn snapshot(&mut self) -> sqlx::Result<()> {
        let orders = open_orders(&self.state, self.trader).await?;
        self.sent = orders
            .iter()
            .map(|o| (o.order_id, o.status.clone()))
            .collect();
        self.ready.push_back(event("snapshot", &orders));
        Ok(())
    }

    /// Events for those of `changed` whose status is news to the client, read in one query.
    async fn update(&mut self, changed: Vec<Uuid>) -> sqlx::Result<()> {
        for order in some_orders(&self.state, self.trader, &changed).await? {
            let news = self.sent.get(&order.order_id) != Some(&order.status);
            if is_open(&order.status) {
                self.sent.insert(order.order_id, order.status.clone());
            } else if self.sent.remove(&order.order_id).is_none() {
                // Closed before the client ever saw it open: nothing to take off its list.
                continue;
            }
            if news {
                self.ready.push_back(event("order", &order));
            }
        }
        Ok(())
    }

    /// Waits for notices, then takes every one already waiting too: the orders they name, or
    /// `None` if the client needs a new snapshot. `Err(())`: the stream's time is up.
    async fn notices(&mut self) -> Result<Option<Vec<Uuid>>, ()> {
        let first = tokio::select! {
            notice = self.watch.next() => notice,
            _ = tokio::time::sleep_until(self.until) => return Err(()),
        };
        let mut changed = Vec::new();
        let mut notice = Some(first);
        while let Some(next) = notice {
            match next {
                Notice::Resync => return Ok(None),
                // The status the client already has: nothing to reload.
                Notice::Changed(change)
                    if self.sent.get(&change.order_id) == Some(&change.status) => {}
                Notice::Changed(change) if !changed.contains(&change.order_id) => {
                    changed.push(change.order_id)
                }
                Notice::Changed(_) => {}
            }
            notice = self.watch.try_next();
        }
        Ok(Some(changed))
    }

    /// The next event, or `None` when the stream is over.
    async fn next(mut self) -> Option<(Result<Event, Infallible>, Self)> {
        loop {
            if let Some(event) = self.ready.pop_front() {
                return Some((Ok(event), self));
            }
            let read = if self.resync {
                self.resync = false;
                self.snapshot().await
            } else {
                match self.notices().await {
                    Err(()) => return None,
                    Ok(None) => {
                        self.resync = true;
                        continue;
                    }
                    Ok(Some(changed)) if changed.is_empty() => continue,
                    Ok(Some(changed)) => self.update(changed).await,
                }
            };
            if let Err(e) = read {
                tracing::warn!(error = %e, "trader order stream cannot reload; the client reconnects");
                return None;
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
        ready: VecDeque::new(),
        resync: true,
        until: Instant::now() + MAX_STREAM,
    };
    Ok(Sse::new(futures::stream::unfold(feed, Feed::next)).keep_alive(KeepAlive::default()))
}
