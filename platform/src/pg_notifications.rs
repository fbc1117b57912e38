//! Listening to a PostgreSQL notification channel for as long as a process runs: connect,
//! `LISTEN`, hand every notification on, and after a lost connection say so and connect again
//! (notifications sent meanwhile are gone, so the listener must assume it missed some).

use crate::health::LoopHealth;
use sqlx::postgres::PgListener;
use sqlx::PgPool;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// What a channel's listener learns.
pub enum Heard<'a> {
    /// Listening (again): whatever was sent while not listening is lost.
    Connected,
    Notified(&'a str),
    /// No longer listening (connection lost, or stopping).
    Lost,
}

/// Listens on `channel` until `stop`, telling `on` what it hears, and `health` whether it is
/// listening: a listener that is away means its process serves from stale or no notices.
pub async fn listen(
    pool: PgPool,
    channel: &str,
    health: LoopHealth,
    stop: CancellationToken,
    mut on: impl FnMut(Heard),
) {
    while !stop.is_cancelled() {
        let connected = async {
            let mut listener = PgListener::connect_with(&pool).await?;
            listener.listen(channel).await?;
            Ok::<_, sqlx::Error>(listener)
        };
        let mut listener = tokio::select! {
            _ = stop.cancelled() => return,
            connected = connected => match connected {
                Ok(listener) => listener,
                Err(e) => {
                    health.retrying(&format!("cannot listen to PostgreSQL notifications: {e}"));
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    }
                }
            },
        };
        on(Heard::Connected);
        health.succeeded();
        loop {
            let received = tokio::select! {
                _ = stop.cancelled() => break,
                received = listener.try_recv() => received,
            };
            match received {
                Ok(Some(notification)) => on(Heard::Notified(notification.payload())),
                // The connection dropped: notifications may have been missed.
                Ok(None) | Err(_) => break,
            }
        }
        on(Heard::Lost);
        if !stop.is_cancelled() {
            health.retrying("the notification connection was lost");
        }
    }
}
