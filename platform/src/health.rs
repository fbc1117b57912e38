//! The health of a process's loops (processors, sinks, their helpers), which `/readyz` and the
//! metrics report: a loop that is retrying or stopped makes its process not ready, naming the
//! loop, since when and why. Each loop registers once and reports every change of its state.

use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Registered, not yet at work (connecting, restoring its state).
    Starting,
    Running,
    /// A transient failure: the same step is being retried.
    Retrying,
    /// The loop ended; the process is about to exit.
    Stopped,
}

impl State {
    /// The value of the `jivapay_loop_state` gauge.
    fn gauge(self) -> f64 {
        match self {
            State::Running => 0.0,
            State::Starting => 1.0,
            State::Retrying => 2.0,
            State::Stopped => 3.0,
        }
    }
}

/// What one loop last reported.
#[derive(Debug, Clone, Serialize)]
pub struct LoopReport {
    pub component: String,
    pub state: State,
    /// When the loop entered `state`.
    pub since: DateTime<Utc>,
    /// Why it is not running (the last error).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub consecutive_failures: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_success: Option<DateTime<Utc>>,
}

/// Every loop of a process. Cheap to clone; clones share the loops.
#[derive(Debug, Clone, Default)]
pub struct Health {
    loops: Arc<Mutex<BTreeMap<String, LoopReport>>>,
}

impl Health {
    /// Registers a loop (as starting) and returns what it reports through.
    pub fn register(&self, component: impl Into<String>) -> LoopHealth {
        let component = component.into();
        let handle = LoopHealth {
            component: component.clone(),
            health: self.clone(),
        };
        handle.update(|report| report.state = State::Starting, None);
        handle
    }

    /// Every loop's last report, by component.
    pub fn reports(&self) -> Vec<LoopReport> {
        self.loops
            .lock()
            .expect("health lock")
            .values()
            .cloned()
            .collect()
    }

    /// The loops that are not running.
    pub fn not_running(&self) -> Vec<LoopReport> {
        let mut reports = self.reports();
        reports.retain(|r| r.state != State::Running);
        reports
    }
}

/// One loop's side of [`Health`].
#[derive(Debug, Clone)]
pub struct LoopHealth {
    component: String,
    health: Health,
}

impl LoopHealth {
    pub fn component(&self) -> &str {
        &self.component
    }

    /// Registers a helper of this loop (a sink's sender, say) as a loop of its own, named
    /// after this one: `"{component} {part}"`.
    pub fn part(&self, part: &str) -> LoopHealth {
        self.health.register(format!("{} {part}", self.component))
    }

    /// A step succeeded: running, no failures in a row.
    pub fn succeeded(&self) {
        self.update(
            |report| {
                report.state = State::Running;
                report.consecutive_failures = 0;
                report.last_success = Some(Utc::now());
            },
            None,
        );
    }

    /// A step failed transiently and is being retried.
    pub fn retrying(&self, reason: &str) {
        self.update(
            |report| {
                report.state = State::Retrying;
                report.consecutive_failures += 1;
            },
            Some(reason),
        );
    }

    /// Back to starting (its state is being rebuilt after a rebalance).
    pub fn starting(&self, reason: &str) {
        self.update(|report| report.state = State::Starting, Some(reason));
    }

    /// The loop ended.
    pub fn stopped(&self, reason: &str) {
        self.update(|report| report.state = State::Stopped, Some(reason));
    }

    fn update(&self, change: impl FnOnce(&mut LoopReport), reason: Option<&str>) {
        let mut loops = self.health.loops.lock().expect("health lock");
        let report = loops
            .entry(self.component.clone())
            .or_insert_with(|| LoopReport {
                component: self.component.clone(),
                state: State::Starting,
                since: Utc::now(),
                reason: None,
                consecutive_failures: 0,
                last_success: None,
            });
        let before = report.state;
        change(report);
        if report.state != before {
            report.since = Utc::now();
        }
        report.reason = reason.map(str::to_owned);
        let labels = [("component", self.component.clone())];
        metrics::gauge!("jivapay_loop_state", &labels).set(report.state.gauge());
        metrics::gauge!("jivapay_loop_consecutive_failures", &labels)
            .set(report.consecutive_failures as f64);
        if let Some(at) = report.last_success {
            metrics::gauge!("jivapay_loop_last_success_timestamp_seconds", &labels)
                .set(at.timestamp_millis() as f64 / 1000.0);
        }
        if report.state != before {
            match report.state {
                State::Retrying | State::Stopped => tracing::warn!(
                    component = %self.component,
                    state = ?report.state,
                    reason = report.reason.as_deref().unwrap_or(""),
                    "loop not running"
                ),
                _ if before == State::Retrying => {
                    tracing::info!(component = %self.component, state = ?report.state, "loop recovered")
                }
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_loop_is_not_running_from_its_first_failure_to_its_next_success() {
        let health = Health::default();
        let sink = health.register("sink ledger");
        let other = health.register("processor fraud");
        other.succeeded();
        assert_eq!(
            health.not_running().len(),
            1,
            "starting counts as not running"
        );
        sink.succeeded();
        assert!(health.not_running().is_empty());
        sink.retrying("database: connection refused");
        sink.retrying("database: connection refused");
        let down = health.not_running();
        assert_eq!(down.len(), 1);
        assert_eq!(down[0].component, "sink ledger");
        assert_eq!(down[0].state, State::Retrying);
        assert_eq!(down[0].consecutive_failures, 2);
        assert_eq!(
            down[0].reason.as_deref(),
            Some("database: connection refused")
        );
        let since = down[0].since;
        sink.retrying("still down");
        assert_eq!(
            health.not_running()[0].since,
            since,
            "since the first failure"
        );
        sink.succeeded();
        assert!(health.not_running().is_empty());
        assert_eq!(health.reports()[1].consecutive_failures, 0);
        other.stopped("fatal: bug");
        assert_eq!(health.not_running()[0].state, State::Stopped);
    }
}
