//! The sender: claims due deliveries in PostgreSQL and POSTs them.
//!
//! - **Claim**: `FOR UPDATE SKIP LOCKED` over due rows (`pending`, or `delivering` whose lease
//!   ran out because its sender died), set to `delivering` with `next_attempt_at` = the lease's
//!   end, `attempt_count + 1`. Several senders can run side by side.
//! - **Per-order order**: a delivery is not claimed while an earlier one of the same order
//!   (lower `order_version`) is still `pending` or `delivering`.
//! - **Isolation of merchants**: at most [`SenderConfig::per_store`] attempts in flight per store
//!   and [`SenderConfig::global`] in all; every attempt is bounded by `callbacks.timeout_secs`.
//!   A slow or dead endpoint therefore holds only its own store's slots.
//! - **Attempt**: fresh `webhook-timestamp` and signature, the same `webhook-id`; redirects are
//!   not followed (a 3xx is a failure); the URL is re-vetted against private addresses and the
//!   connection goes only to vetted addresses; the first KB of the answer is kept.
//! - **Outcome**, written in one transaction with the attempt row: `succeeded`, or the next
//!   attempt per the schedule, or `failed` when the schedule is used up; the store's
//!   `callbacks_failing_since` is cleared by a 2xx and otherwise kept, and once it is older
//!   than `callbacks.disable_after_failing_secs` the store's callbacks are disabled.
//!   Deliveries of a disabled store wait (they are not attempted) until it is re-enabled.

use super::policy::{Policy, PolicyCache};
use super::resolver::GuardedResolver;
use super::schedule::{next_delay, parse_retry_after};
use super::signing::signature_header;
use super::Clock;
use chrono::{DateTime, Utc};
use jivapay_core::callback_url;
use jivapay_core::crypto::DataKey;
use jivapay_core::signing_secret;
use jivapay_platform::health::LoopHealth;
use sqlx::PgPool;
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// The most of a response body kept with an attempt.
pub const EXCERPT_BYTES: usize = 1024;

#[derive(Clone)]
pub struct SenderConfig {
    /// Attempts in flight in this sender, in all.
    pub global: usize,
    /// Attempts in flight in this sender, per store.
    pub per_store: usize,
    /// How often due deliveries are looked for when there was nothing to do.
    pub poll: Duration,
}

impl Default for SenderConfig {
    fn default() -> Self {
        Self {
            global: 64,
            per_store: 4,
            poll: Duration::from_millis(250),
        }
    }
}

/// A claimed delivery.
#[derive(Debug, sqlx::FromRow)]
struct Claimed {
    id: Uuid,
    event_id: Uuid,
    store_id: Uuid,
    url: String,
    payload: serde_json::Value,
    attempt_count: i32,
    schedule_offset: i32,
}

/// What one HTTP attempt gave.
#[derive(Debug, Default)]
struct Outcome {
    status_code: Option<u16>,
    excerpt: Option<String>,
    error: Option<String>,
    retry_after: Option<Duration>,
}

impl Outcome {
    fn succeeded(&self) -> bool {
        self.error.is_none() && self.status_code.is_some_and(|c| (200..300).contains(&c))
    }
}

pub struct Sender {
    pool: PgPool,
    clock: Clock,
    data_key: Arc<DataKey>,
    config: SenderConfig,
    policy: PolicyCache,
    resolver: GuardedResolver,
    client: reqwest::Client,
    in_flight: Arc<Mutex<HashMap<Uuid, usize>>>,
    slots: Arc<Semaphore>,
}

/// Text for PostgreSQL: valid UTF-8, no NUL, at most `EXCERPT_BYTES` bytes.
fn excerpt(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(EXCERPT_BYTES)]).replace('\0', "");
    let mut end = text.len().min(EXCERPT_BYTES);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

impl Sender {
    pub fn new(pool: PgPool, clock: Clock, data_key: Arc<DataKey>, config: SenderConfig) -> Self {
        let resolver = GuardedResolver::default();
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .dns_resolver(Arc::new(resolver.clone()))
            .user_agent("JivaPay-Webhooks/1")
            .pool_max_idle_per_host(2)
            .build()
            .expect("the HTTP client builds");
        Self {
            policy: PolicyCache::new(pool.clone()),
            slots: Arc::new(Semaphore::new(config.global)),
            pool,
            clock,
            data_key,
            config,
            resolver,
            client,
            in_flight: Arc::default(),
        }
    }

    /// Claims and sends until `stop`; attempts in flight then finish (they are bounded).
    /// `health` hears whether the sender can read its settings and claim deliveries.
    pub async fn run(
        self: Arc<Self>,
        health: LoopHealth,
        stop: CancellationToken,
    ) -> sqlx::Result<()> {
        let mut tasks = tokio::task::JoinSet::new();
        let result = loop {
            while tasks.try_join_next().is_some() {}
            let policy = match self.policy.get().await {
                Ok(p) => p,
                Err(e) => {
                    health.retrying(&format!("callback settings unreadable: {e}"));
                    if sleep_or_stop(&stop, self.config.poll).await {
                        break Ok(());
                    }
                    continue;
                }
            };
            self.resolver
                .allow_private
                .store(policy.allow_private, Ordering::Relaxed);
            let free = self.slots.available_permits();
            let claimed = if free == 0 {
                Vec::new()
            } else {
                match self.claim(&policy, free).await {
                    Ok(c) => c,
                    Err(e) => {
                        health.retrying(&format!("claiming callback deliveries failed: {e}"));
                        if sleep_or_stop(&stop, self.config.poll).await {
                            break Ok(());
                        }
                        continue;
                    }
                }
            };
            health.succeeded();
            if claimed.is_empty() {
                if sleep_or_stop(&stop, self.config.poll).await {
                    break Ok(());
                }
                continue;
            }
            for delivery in claimed {
                let Ok(permit) = self.slots.clone().try_acquire_owned() else {
                    break; // cannot happen: claimed at most `free`
                };
                *self
                    .in_flight
                    .lock()
                    .expect("lock")
                    .entry(delivery.store_id)
                    .or_default() += 1;
                let (sender, policy) = (self.clone(), policy.clone());
                tasks.spawn(async move {
                    let store_id = delivery.store_id;
                    if let Err(e) = sender.attempt(delivery, &policy).await {
                        // The lease runs out and the delivery is claimed again.
                        tracing::warn!(error = %e, "recording a callback attempt failed");
                    }
                    let mut in_flight = sender.in_flight.lock().expect("lock");
                    if let Some(n) = in_flight.get_mut(&store_id) {
                        *n -= 1;
                        if *n == 0 {
                            in_flight.remove(&store_id);
                        }
                    }
                    drop(permit);
                });
            }
            if stop.is_cancelled() {
                break Ok(());
            }
        };
        while tasks.join_next().await.is_some() {}
        result
    }

    async fn claim(&self, policy: &Policy, free: usize) -> sqlx::Result<Vec<Claimed>> {
        let (busy_stores, busy_counts): (Vec<Uuid>, Vec<i32>) = self
            .in_flight
            .lock()
            .expect("lock")
            .iter()
            .map(|(s, n)| (*s, *n as i32))
            .unzip();
        let now = (self.clock)();
        let lease_end = now + chrono::Duration::from_std(policy.lease()).unwrap_or_default();
        sqlx::query_as(
            "WITH candidates AS (
                 -- Per store, at most its free slots: a store with a huge backlog cannot crowd
                 -- the others out of a claim.
                 SELECT c.id, c.next_attempt_at
                 FROM stores s
                 LEFT JOIN unnest($3::uuid[], $4::int[]) AS busy (store_id, n) ON busy.store_id = s.id
                 CROSS JOIN LATERAL (
                     SELECT d.id, d.next_attempt_at
                     FROM callback_deliveries d
                     WHERE d.store_id = s.id
                       AND d.status IN ('pending', 'delivering') AND d.next_attempt_at <= $1
                       AND NOT EXISTS (
                           SELECT 1 FROM callback_deliveries e
                           WHERE e.order_id = d.order_id AND e.order_version < d.order_version
                             AND e.status IN ('pending', 'delivering'))
                     ORDER BY d.next_attempt_at
                     LIMIT greatest($5 - coalesce(busy.n, 0), 0)
                     FOR UPDATE OF d SKIP LOCKED
                 ) c
                 WHERE s.callbacks_disabled_at IS NULL
                   AND coalesce(busy.n, 0) < $5
                   AND EXISTS (
                       SELECT 1 FROM callback_deliveries x
                       WHERE x.store_id = s.id AND x.status IN ('pending', 'delivering')
                         AND x.next_attempt_at <= $1)
             ), chosen AS (
                 SELECT id FROM candidates ORDER BY next_attempt_at, id LIMIT $6
             )
             UPDATE callback_deliveries d
             SET status = 'delivering', attempt_count = d.attempt_count + 1, next_attempt_at = $2,
                 last_attempt_at = $1
             FROM chosen WHERE d.id = chosen.id
             RETURNING d.id, d.event_id, d.store_id, d.url, d.payload, d.attempt_count, d.schedule_offset",
        )
        .bind(now)
        .bind(lease_end)
        .bind(&busy_stores)
        .bind(&busy_counts)
        .bind(self.config.per_store as i64)
        .bind(free as i64)
        .fetch_all(&self.pool)
        .await
    }

    /// The store's signing secrets now valid: the current one and, during a rotation, the
    /// previous one.
    async fn secrets(&self, store_id: Uuid, now: DateTime<Utc>) -> sqlx::Result<Vec<String>> {
        let row: Option<(String, Option<String>, Option<DateTime<Utc>>)> = sqlx::query_as(
            "SELECT signing_secret_encrypted, previous_signing_secret_encrypted,
                    previous_signing_secret_expires_at
             FROM stores WHERE id = $1",
        )
        .bind(store_id)
        .fetch_optional(&self.pool)
        .await?;
        let Some((current, previous, expires)) = row else {
            return Ok(vec![]);
        };
        let open = |stored: &str| signing_secret::open(&self.data_key, stored);
        let mut secrets: Vec<String> = open(&current).into_iter().collect();
        if let (Some(previous), Some(expires)) = (previous, expires) {
            if expires > now {
                secrets.extend(open(&previous));
            }
        }
        Ok(secrets)
    }

    async fn post(
        &self,
        url: &str,
        headers: [(&str, String); 3],
        body: String,
        policy: &Policy,
    ) -> Outcome {
        if let Err(refusal) = callback_url::vet(url, policy.allow_private).await {
            return Outcome {
                error: Some(format!("{}: {refusal}", refusal.code())),
                ..Outcome::default()
            };
        }
        let mut request = self
            .client
            .post(url)
            .timeout(policy.timeout)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
        for (name, value) in headers {
            request = request.header(name, value);
        }
        let exchange = async {
            let mut response = request.send().await?;
            let status = response.status();
            let retry_after = response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| parse_retry_after(v, (self.clock)()));
            let location = response
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let mut body = Vec::new();
            while body.len() < EXCERPT_BYTES {
                match response.chunk().await? {
                    Some(chunk) => body.extend_from_slice(&chunk),
                    None => break,
                }
            }
            Ok::<_, reqwest::Error>((status, retry_after, location, body))
        };
        match tokio::time::timeout(policy.timeout, exchange).await {
            Err(_) => Outcome {
                error: Some(format!(
                    "timeout: no complete answer within {:?}",
                    policy.timeout
                )),
                ..Outcome::default()
            },
            Ok(Err(e)) => Outcome {
                error: Some(if e.is_timeout() {
                    format!("timeout: no complete answer within {:?}", policy.timeout)
                } else if e.is_connect() {
                    format!("connect: {}", error_chain(&e))
                } else {
                    format!("http: {}", error_chain(&e))
                }),
                ..Outcome::default()
            },
            Ok(Ok((status, retry_after, location, body))) => Outcome {
                status_code: Some(status.as_u16()),
                excerpt: (!body.is_empty()).then(|| excerpt(&body)),
                error: if status.is_redirection() {
                    Some(format!(
                        "redirect: {status} to {} not followed; callbacks need a 2xx from the URL itself",
                        location.as_deref().unwrap_or("(no location)")
                    ))
                } else if !status.is_success() {
                    Some(format!("status: {status}"))
                } else {
                    None
                },
                retry_after,
            },
        }
    }

    /// One attempt of a claimed delivery, recorded with its outcome.
    async fn attempt(&self, delivery: Claimed, policy: &Policy) -> sqlx::Result<()> {
        let started = (self.clock)();
        let clock_started = Instant::now();
        let timestamp = started.timestamp();
        let id = delivery.event_id.to_string();
        let body = delivery.payload.to_string();
        let secrets = self.secrets(delivery.store_id, started).await?;
        let outcome = if secrets.is_empty() {
            Outcome {
                error: Some("signing: the store has no usable signing secret".into()),
                ..Outcome::default()
            }
        } else {
            let signature = signature_header(&secrets, &id, timestamp, body.as_bytes());
            let headers = [
                ("webhook-id", id.clone()),
                ("webhook-timestamp", timestamp.to_string()),
                ("webhook-signature", signature),
            ];
            self.post(&delivery.url, headers, body, policy).await
        };
        let latency_ms = clock_started.elapsed().as_millis().min(i32::MAX as u128) as i32;
        let finished = started + chrono::Duration::milliseconds(i64::from(latency_ms));
        let succeeded = outcome.succeeded();
        let made = (delivery.attempt_count - delivery.schedule_offset).max(0) as usize;
        let next = if succeeded {
            None
        } else {
            next_delay(
                &policy.schedule,
                made,
                outcome.retry_after,
                &mut rand::thread_rng(),
            )
            .map(|d| finished + chrono::Duration::from_std(d).unwrap_or_default())
        };
        let status = match (succeeded, next) {
            (true, _) => "succeeded",
            (false, Some(_)) => "pending",
            (false, None) => "failed",
        };
        metrics::counter!("jivapay_callback_attempts_total", "outcome" => status).increment(1);
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO callback_attempts (delivery_id, attempt_no, url, started_at, finished_at, status_code,
                 latency_ms, response_excerpt, error, webhook_timestamp, next_attempt_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
             ON CONFLICT (delivery_id, attempt_no) DO NOTHING",
        )
        .bind(delivery.id)
        .bind(delivery.attempt_count)
        .bind(&delivery.url)
        .bind(started)
        .bind(finished)
        .bind(outcome.status_code.map(i32::from))
        .bind(latency_ms)
        .bind(&outcome.excerpt)
        .bind(&outcome.error)
        .bind(timestamp)
        .bind(next)
        .execute(&mut *tx)
        .await?;
        // Only the latest claim decides (a sender that outlived its lease records its attempt
        // but does not overwrite the state).
        let updated = sqlx::query(
            "UPDATE callback_deliveries SET status = $3, next_attempt_at = $4, last_attempt_at = $5,
                 last_status_code = $6, last_error = $7,
                 completed_at = CASE WHEN $3 IN ('succeeded', 'failed') THEN $8::timestamptz END
             WHERE id = $1 AND attempt_count = $2 AND status = 'delivering'",
        )
        .bind(delivery.id)
        .bind(delivery.attempt_count)
        .bind(status)
        .bind(next)
        .bind(started)
        .bind(outcome.status_code.map(i32::from))
        .bind(&outcome.error)
        .bind(finished)
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() == 1 {
            if succeeded {
                sqlx::query("UPDATE stores SET callbacks_failing_since = NULL WHERE id = $1 AND callbacks_failing_since IS NOT NULL")
                    .bind(delivery.store_id)
                    .execute(&mut *tx)
                    .await?;
            } else {
                let disable_before =
                    finished - chrono::Duration::from_std(policy.disable_after).unwrap_or_default();
                let reason = format!(
                    "every callback failed for {} s (last: {}); fix the endpoint, then re-enable \
                     with POST /api/stores/{}/callbacks/enable or save a new callback_url",
                    policy.disable_after.as_secs(),
                    outcome.error.as_deref().unwrap_or("error"),
                    delivery.store_id
                );
                // `true` when this attempt is the one that disabled the store.
                let disabled_now: Option<bool> = sqlx::query_scalar(
                    "UPDATE stores SET
                         callbacks_failing_since = coalesce(callbacks_failing_since, $2),
                         callbacks_disabled_at = CASE
                             WHEN callbacks_disabled_at IS NULL AND coalesce(callbacks_failing_since, $2) <= $3
                             THEN $4 ELSE callbacks_disabled_at END,
                         callbacks_disabled_reason = CASE
                             WHEN callbacks_disabled_at IS NULL AND coalesce(callbacks_failing_since, $2) <= $3
                             THEN $5 ELSE callbacks_disabled_reason END
                     WHERE id = $1
                     RETURNING callbacks_disabled_at IS NOT DISTINCT FROM $4",
                )
                .bind(delivery.store_id)
                .bind(started)
                .bind(disable_before)
                .bind(finished)
                .bind(&reason)
                .fetch_optional(&mut *tx)
                .await?;
                if disabled_now == Some(true) {
                    metrics::counter!("jivapay_callback_stores_disabled_total").increment(1);
                    tracing::warn!(store_id = %delivery.store_id, %reason, "callbacks disabled");
                    sqlx::query(
                        "INSERT INTO audit_log (actor_role, action, entity_type, entity_id, after, level)
                         VALUES ('system', 'store.callbacks.disable', 'store', $1, $2, 'warning')",
                    )
                    .bind(delivery.store_id.to_string())
                    .bind(serde_json::json!({
                        "callbacks_disabled_at": finished,
                        "callbacks_disabled_reason": reason,
                    }))
                    .execute(&mut *tx)
                    .await?;
                }
            }
        }
        tx.commit().await
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// Sleeps, or returns `true` at once when stopped.
async fn sleep_or_stop(stop: &CancellationToken, d: Duration) -> bool {
    tokio::select! {
        _ = stop.cancelled() => true,
        _ = tokio::time::sleep(d) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpts_are_short_valid_text() {
        let long = "é".repeat(2000);
        let e = excerpt(long.as_bytes());
        assert!(e.len() <= EXCERPT_BYTES && e.starts_with('é'));
        assert_eq!(excerpt(b"ok\0"), "ok");
        assert_eq!(excerpt(&[0xff, b'a']), "\u{fffd}a");
    }
}
