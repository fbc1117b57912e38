//! `/healthz` (the process is alive), `/readyz` (its dependencies answer and every loop of the
//! process is running) and `/metrics` (Prometheus text format).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use futures::future::BoxFuture;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

/// One dependency check: a name and an async probe that says why it is not ready.
pub type ReadinessCheck = Arc<dyn Fn() -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

/// The checks `/readyz` runs; each gets a bounded time.
#[derive(Clone, Default)]
pub struct Readiness {
    checks: Vec<(&'static str, ReadinessCheck)>,
    /// The process's loops: one that is starting, retrying or stopped makes it not ready.
    loops: crate::health::Health,
}

impl Readiness {
    pub fn with(mut self, name: &'static str, check: ReadinessCheck) -> Self {
        self.checks.push((name, check));
        self
    }

    /// Reports the loops registered with `health`.
    pub fn with_loops(mut self, health: crate::health::Health) -> Self {
        self.loops = health;
        self
    }

    /// Readiness of a PostgreSQL pool: a `SELECT 1` answers.
    pub fn with_database(self, pool: sqlx::PgPool) -> Self {
        self.with(
            "postgres",
            Arc::new(move || {
                let pool = pool.clone();
                Box::pin(async move {
                    sqlx::query("SELECT 1")
                        .execute(&pool)
                        .await
                        .map(drop)
                        .map_err(|e| e.to_string())
                })
            }),
        )
    }

    /// Readiness of the broker: its metadata answers.
    pub fn with_broker(self, broker: crate::kafka::Broker) -> Self {
        self.with(
            "kafka",
            Arc::new(move || {
                let broker = broker.clone();
                Box::pin(async move { broker.check_reachable().await.map_err(|e| e.to_string()) })
            }),
        )
    }
}

/// Time one readiness probe may take before it counts as failed.
const CHECK_TIMEOUT: Duration = Duration::from_secs(3);

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(readiness): State<Readiness>) -> impl IntoResponse {
    let mut failures = serde_json::Map::new();
    for (name, check) in &readiness.checks {
        let outcome = tokio::time::timeout(CHECK_TIMEOUT, check()).await;
        let problem = match outcome {
            Ok(Ok(())) => continue,
            Ok(Err(e)) => e,
            Err(_) => format!("no answer within {}s", CHECK_TIMEOUT.as_secs()),
        };
        failures.insert((*name).into(), problem.into());
    }
    let loops = readiness.loops.reports();
    let loops_down = loops
        .iter()
        .any(|l| l.state != crate::health::State::Running);
    if failures.is_empty() && !loops_down {
        (
            StatusCode::OK,
            Json(json!({"status": "ready", "loops": loops})),
        )
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "not ready", "failures": failures, "loops": loops})),
        )
    }
}

async fn metrics_text() -> impl IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        crate::telemetry::metrics().render(),
    )
}

pub fn ops_router(readiness: Readiness) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .with_state(readiness)
}
