//! Pushes order changes to the HTTP streams that show them (the payment page's and the trader's
//! server-sent events) instead of having clients poll PostgreSQL.
//!
//! The projection sink notifies channel [`CHANNEL`] once per changed order in the transaction
//! that writes it, so a notice arrives only after the change is visible to readers. One
//! listener per process ([`listen`]) fans the notices out to the streams watching that order or
//! that trader. A stream that may have missed something — it fell behind, or the listener lost
//! its connection — gets [`Notice::Resync`] and reloads what it shows.

use crate::health::{Health, LoopHealth};
use crate::pg_notifications::{self, Heard};
use sqlx::PgPool;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// The PostgreSQL notification channel of order changes.
pub const CHANNEL: &str = "jivapay_order_changes";

/// Notices a trader's watch holds before it must resync (a stream that slow reloads anyway):
/// enough for a busy trader's notices between two of his stream's reads.
const TRADER_WATCH_CAPACITY: usize = 1024;
/// The same for one order's watch: an order changes a handful of times in its life.
const ORDER_WATCH_CAPACITY: usize = 16;

/// One changed order, as the projection committed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderChange {
    pub order_id: Uuid,
    pub trader_id: Option<Uuid>,
    pub status: String,
}

impl OrderChange {
    /// The notification payload: `order,trader,status` (`-` for no trader). Short, because
    /// PostgreSQL queues every one for every listener.
    pub fn payload(&self) -> String {
        let trader = self
            .trader_id
            .map_or_else(|| "-".to_owned(), |t| t.to_string());
        format!("{},{trader},{}", self.order_id, self.status)
    }

    pub fn parse(payload: &str) -> Option<Self> {
        let mut parts = payload.splitn(3, ',');
        let order_id = parts.next()?.parse().ok()?;
        let trader_id = match parts.next()? {
            "-" => None,
            trader => Some(trader.parse().ok()?),
        };
        let status = parts.next().filter(|s| !s.is_empty())?.to_owned();
        Some(Self {
            order_id,
            trader_id,
            status,
        })
    }
}

/// What a watch receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    Changed(OrderChange),
    /// Changes may have been missed: reload.
    Resync,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Subject {
    Order(Uuid),
    Trader(Uuid),
}

/// The watches of one process, by order and by trader.
#[derive(Debug, Default)]
pub struct OrderChanges {
    watched: Mutex<HashMap<Subject, broadcast::Sender<Notice>>>,
}

/// Notices about one order or one trader's orders; stops watching when dropped.
#[derive(Debug)]
pub struct Watch {
    hub: Arc<OrderChanges>,
    subject: Subject,
    receiver: broadcast::Receiver<Notice>,
}

impl Watch {
    /// The next notice; [`Notice::Resync`] if this watch fell behind.
    pub async fn next(&mut self) -> Notice {
        match self.receiver.recv().await {
            Ok(notice) => notice,
            // Closed cannot happen while this watch holds the hub; both mean "start over".
            Err(broadcast::error::RecvError::Lagged(_) | broadcast::error::RecvError::Closed) => {
                Notice::Resync
            }
        }
    }
}

impl Watch {
    /// A notice already waiting, without waiting for one.
    pub fn try_next(&mut self) -> Option<Notice> {
        use broadcast::error::TryRecvError;
        match self.receiver.try_recv() {
            Ok(notice) => Some(notice),
            Err(TryRecvError::Lagged(_)) => Some(Notice::Resync),
            Err(TryRecvError::Empty | TryRecvError::Closed) => None,
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let mut watched = self.hub.lock();
        // This watch's receiver still counts until the drop completes.
        if watched
            .get(&self.subject)
            .is_some_and(|sender| sender.receiver_count() <= 1)
        {
            watched.remove(&self.subject);
        }
    }
}

impl OrderChanges {
    /// A hub fed by its own [`listen`]er until `stop`, which reports to `health` as
    /// `listener order changes`.
    pub fn listening(pool: &PgPool, health: &Health, stop: &CancellationToken) -> Arc<Self> {
        let hub = Arc::new(Self::default());
        let listener = health.register("listener order changes");
        tokio::spawn(listen(pool.clone(), hub.clone(), listener, stop.clone()));
        hub
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Subject, broadcast::Sender<Notice>>> {
        // A panic elsewhere cannot leave the map inconsistent (each operation is one call).
        self.watched.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn watch(self: &Arc<Self>, subject: Subject) -> Watch {
        let capacity = match subject {
            Subject::Order(_) => ORDER_WATCH_CAPACITY,
            Subject::Trader(_) => TRADER_WATCH_CAPACITY,
        };
        let receiver = self
            .lock()
            .entry(subject)
            .or_insert_with(|| broadcast::channel(capacity).0)
            .subscribe();
        Watch {
            hub: self.clone(),
            subject,
            receiver,
        }
    }

    /// Watches one order (the payment page).
    pub fn watch_order(self: &Arc<Self>, order_id: Uuid) -> Watch {
        self.watch(Subject::Order(order_id))
    }

    /// Watches every order assigned to one trader (the trader's list).
    pub fn watch_trader(self: &Arc<Self>, trader_id: Uuid) -> Watch {
        self.watch(Subject::Trader(trader_id))
    }

    /// Hands `change` to the watches of its order and of its trader.
    pub fn publish(&self, change: &OrderChange) {
        let watched = self.lock();
        let subjects = std::iter::once(Subject::Order(change.order_id))
            .chain(change.trader_id.map(Subject::Trader));
        for subject in subjects {
            if let Some(sender) = watched.get(&subject) {
                // No receiver left is not an error: the last one is dropping.
                sender.send(Notice::Changed(change.clone())).ok();
            }
        }
    }

    /// Tells every watch to reload.
    pub fn resync_all(&self) {
        for sender in self.lock().values() {
            sender.send(Notice::Resync).ok();
        }
    }

    /// How many orders and traders are watched (for tests and metrics).
    pub fn watched(&self) -> usize {
        self.lock().len()
    }
}

/// Listens on [`CHANNEL`] until `stop` and publishes what arrives. After a lost connection
/// every watch is told to resync, since notices sent meanwhile are gone.
pub async fn listen(
    pool: PgPool,
    hub: Arc<OrderChanges>,
    health: LoopHealth,
    stop: CancellationToken,
) {
    pg_notifications::listen(pool, CHANNEL, health, stop, |heard| match heard {
        // Whatever changed while no listener was connected.
        Heard::Connected => hub.resync_all(),
        Heard::Notified(payload) => match OrderChange::parse(payload) {
            Some(change) => hub.publish(&change),
            None => tracing::warn!(payload, "unreadable order change notice"),
        },
        Heard::Lost => {}
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(order_id: Uuid, trader_id: Option<Uuid>, status: &str) -> OrderChange {
        OrderChange {
            order_id,
            trader_id,
            status: status.into(),
        }
    }

    #[test]
    fn payloads_read_back() {
        for trader in [None, Some(Uuid::new_v4())] {
            let sent = change(Uuid::new_v4(), trader, "client_confirmed");
            assert_eq!(OrderChange::parse(&sent.payload()), Some(sent));
        }
        for bad in [
            "",
            "x,-,assigned",
            "9b2b1f4e-6f1e-4c56-9d3e-3a0f1c2d4e5f,-,",
            "a,b",
        ] {
            assert_eq!(OrderChange::parse(bad), None, "{bad}");
        }
    }

    #[tokio::test]
    async fn notices_reach_the_watches_of_their_order_and_trader_only() {
        let hub = Arc::new(OrderChanges::default());
        let (order, other_order, trader) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let mut by_order = hub.watch_order(order);
        let mut by_trader = hub.watch_trader(trader);
        let mut by_other = hub.watch_order(other_order);
        let assigned = change(order, Some(trader), "assigned");
        hub.publish(&assigned);
        assert_eq!(by_order.next().await, Notice::Changed(assigned.clone()));
        assert_eq!(by_trader.next().await, Notice::Changed(assigned));
        hub.resync_all();
        assert_eq!(
            by_other.next().await,
            Notice::Resync,
            "nothing else was queued"
        );
    }

    #[tokio::test]
    async fn a_watch_that_falls_behind_resyncs_and_dropped_watches_are_forgotten() {
        let hub = Arc::new(OrderChanges::default());
        let order = Uuid::new_v4();
        let mut slow = hub.watch_order(order);
        let second = hub.watch_order(order);
        for _ in 0..=ORDER_WATCH_CAPACITY {
            hub.publish(&change(order, None, "assigned"));
        }
        assert_eq!(slow.next().await, Notice::Resync);
        assert_eq!(hub.watched(), 1);
        drop(second);
        assert_eq!(hub.watched(), 1, "one watch is left");
        drop(slow);
        assert_eq!(hub.watched(), 0);
    }
}
