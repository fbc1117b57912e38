//! The one failure policy of every streaming loop (ARCHITECTURE principle 9), decided from the
//! error's type, never from where it happened:
//!
//! - [`Failure::Transient`] — PostgreSQL unreachable or its connection lost, a serialization
//!   failure or deadlock, the broker unreachable, a produce timed out, a full queue: the loop
//!   retries the same batch with exponential backoff and jitter ([`Backoff`]), for as long as
//!   it takes, never skipping or reordering;
//! - [`Failure::Record`] — one record is at fault (undecodable, refused by a constraint): it is
//!   dead-lettered with its reason and the loop goes on;
//! - [`Failure::Fatal`] — a broken invariant or a bug: the loop ends with the error and its
//!   process exits non-zero, so that its supervisor restarts it.

use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    Transient,
    Record,
    Fatal,
}

/// An error that knows which kind of failure it is.
pub trait Classify {
    fn failure(&self) -> Failure;
}

impl Classify for sqlx::Error {
    fn failure(&self) -> Failure {
        match self {
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::Protocol(_)
            | sqlx::Error::WorkerCrashed => Failure::Transient,
            sqlx::Error::Database(e) => e.code().map_or(Failure::Fatal, |c| sql_state(&c)),
            _ => Failure::Fatal,
        }
    }
}

/// By SQLSTATE class (PostgreSQL's appendix A).
fn sql_state(code: &str) -> Failure {
    match code {
        // serialization failure, deadlock
        "40001" | "40P01" => Failure::Transient,
        // admin shutdown, crash shutdown, cannot connect now (the server is starting or stopping)
        "57P01" | "57P02" | "57P03" => Failure::Transient,
        // a user-raised exception: the ledger's checks refuse a transfer with it
        "P0001" => Failure::Record,
        _ => match &code[..2.min(code.len())] {
            // connection exception, insufficient resources, operator intervention
            "08" | "53" | "57" => Failure::Transient,
            // data exception, integrity constraint violation
            "22" | "23" => Failure::Record,
            _ => Failure::Fatal,
        },
    }
}

impl Classify for KafkaError {
    fn failure(&self) -> Failure {
        if breaks_the_producer(self) {
            return Failure::Fatal;
        }
        let code = match self {
            KafkaError::MessageProduction(code)
            | KafkaError::MessageConsumption(code)
            | KafkaError::ConsumerCommit(code)
            | KafkaError::MetadataFetch(code)
            | KafkaError::OffsetFetch(code) => *code,
            KafkaError::Canceled | KafkaError::NoMessageReceived => return Failure::Transient,
            // Creating a client or a configuration error: nothing a retry changes.
            KafkaError::ClientConfig(..) | KafkaError::ClientCreation(_) => return Failure::Fatal,
            _ => return Failure::Transient,
        };
        match code {
            RDKafkaErrorCode::MessageSizeTooLarge
            | RDKafkaErrorCode::InvalidMessageSize
            | RDKafkaErrorCode::InvalidMessage
            | RDKafkaErrorCode::TopicAuthorizationFailed
            | RDKafkaErrorCode::ClusterAuthorizationFailed
            | RDKafkaErrorCode::InvalidConfig
            | RDKafkaErrorCode::UnknownPartition
            | RDKafkaErrorCode::Fatal => Failure::Fatal,
            _ => Failure::Transient,
        }
    }
}

/// Whether `error` leaves the producer that met it unable to send anything again: it lost its
/// idempotent identity (Tansu fences it after the epoch bump that follows timed-out sends) or
/// librdkafka raised its fatal error. Not a record's fault: every later send of every
/// component sharing the producer fails the same way, so only a new process goes on.
pub fn breaks_the_producer(error: &KafkaError) -> bool {
    matches!(
        error,
        KafkaError::MessageProduction(
            RDKafkaErrorCode::ProducerFenced
                | RDKafkaErrorCode::InvalidProducerEpoch
                | RDKafkaErrorCode::Fatal
        )
    )
}

impl Classify for crate::kafka::ProduceError {
    fn failure(&self) -> Failure {
        match self {
            // A record that does not fit its schema is our bug.
            crate::kafka::ProduceError::Encode(_) => Failure::Fatal,
            crate::kafka::ProduceError::Kafka { source, .. } => source.failure(),
        }
    }
}

/// Delays between retries of one failing step: exponential from 100 ms, jittered, at most 5 s,
/// without a limit on their count (a transient failure is waited out, however long).
pub struct Backoff(Box<dyn Iterator<Item = Duration> + Send + Sync>);

/// The pause after a consume error. Not a growing backoff: librdkafka paces its errors
/// itself (they come from its reconnect attempts) and queues them, so a backoff grown during
/// an outage was then paid once per queued error after it — two minutes of a sink reporting
/// `AllBrokersDown` after a 45 s broker outage while the broker was long back.
pub const CONSUME_ERROR_PAUSE: Duration = RETRY_DELAY_MIN;

/// The first delay; each next one doubles, up to [`RETRY_DELAY_MAX`].
pub const RETRY_DELAY_MIN: Duration = Duration::from_millis(100);
pub const RETRY_DELAY_MAX: Duration = Duration::from_secs(5);

impl Default for Backoff {
    fn default() -> Self {
        use backon::BackoffBuilder;
        Self(Box::new(
            backon::ExponentialBuilder::default()
                .with_min_delay(RETRY_DELAY_MIN)
                .with_max_delay(RETRY_DELAY_MAX)
                .with_jitter()
                .without_max_times()
                .build(),
        ))
    }
}

impl Backoff {
    /// The next delay.
    pub fn next_delay(&mut self) -> Duration {
        self.0.next().unwrap_or(RETRY_DELAY_MAX)
    }
}

/// Why [`retry`] gave up.
#[derive(Debug)]
pub enum Halt<E> {
    /// The loop is stopping (its stop token was cancelled during a wait).
    Stopped,
    /// A failure that no retry changes: [`Failure::Record`] or [`Failure::Fatal`].
    Failed(E, Failure),
}

/// Runs `step` until it succeeds, retrying transient failures after a [`Backoff`] delay for as
/// long as they last (each reported to `health` as retrying, the next success as running).
/// Gives up on any other failure, and when `stop` is cancelled while it waits.
pub async fn retry<T, E, F, Fut>(
    health: &crate::health::LoopHealth,
    stop: &tokio_util::sync::CancellationToken,
    what: &str,
    mut step: F,
) -> Result<T, Halt<E>>
where
    E: Classify + std::fmt::Display,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
{
    let mut backoff = Backoff::default();
    let mut failed = false;
    loop {
        match step().await {
            Ok(value) => {
                if failed {
                    health.succeeded();
                }
                return Ok(value);
            }
            Err(e) => match e.failure() {
                Failure::Transient => {
                    failed = true;
                    health.retrying(&format!("{what}: {e}"));
                    tokio::select! {
                        _ = stop.cancelled() => return Err(Halt::Stopped),
                        _ = tokio::time::sleep(backoff.next_delay()) => {}
                    }
                }
                failure => return Err(Halt::Failed(e, failure)),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sql_states_are_sorted_by_what_a_retry_can_change() {
        assert_eq!(sql_state("40001"), Failure::Transient);
        assert_eq!(sql_state("40P01"), Failure::Transient);
        assert_eq!(sql_state("08006"), Failure::Transient);
        assert_eq!(sql_state("57P01"), Failure::Transient);
        assert_eq!(sql_state("53300"), Failure::Transient);
        assert_eq!(sql_state("23503"), Failure::Record); // foreign key
        assert_eq!(sql_state("23505"), Failure::Record); // unique
        assert_eq!(sql_state("22P02"), Failure::Record); // invalid text representation
        assert_eq!(sql_state("P0001"), Failure::Record);
        assert_eq!(sql_state("42P01"), Failure::Fatal); // undefined table: a bug
    }

    #[test]
    fn a_lost_connection_is_transient_and_a_bad_column_fatal() {
        let io = sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        assert_eq!(io.failure(), Failure::Transient);
        assert_eq!(sqlx::Error::PoolTimedOut.failure(), Failure::Transient);
        assert_eq!(
            sqlx::Error::ColumnNotFound("x".into()).failure(),
            Failure::Fatal
        );
    }

    #[test]
    fn produce_timeouts_are_transient_and_oversized_records_fatal() {
        let timed_out = KafkaError::MessageProduction(RDKafkaErrorCode::MessageTimedOut);
        assert_eq!(timed_out.failure(), Failure::Transient);
        let full = KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull);
        assert_eq!(full.failure(), Failure::Transient);
        let down = KafkaError::MessageProduction(RDKafkaErrorCode::AllBrokersDown);
        assert_eq!(down.failure(), Failure::Transient);
        let large = KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge);
        assert_eq!(large.failure(), Failure::Fatal);
        let fenced = KafkaError::MessageProduction(RDKafkaErrorCode::ProducerFenced);
        assert_eq!(fenced.failure(), Failure::Fatal);
    }

    #[derive(Debug)]
    struct Flaky(Failure);
    impl std::fmt::Display for Flaky {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "{:?}", self.0)
        }
    }
    impl Classify for Flaky {
        fn failure(&self) -> Failure {
            self.0
        }
    }

    #[tokio::test]
    async fn retry_waits_out_transient_failures_and_gives_up_on_others() {
        let health = crate::health::Health::default();
        let step = health.register("test");
        step.succeeded();
        let stop = tokio_util::sync::CancellationToken::new();
        let mut calls = 0;
        let value = retry(&step, &stop, "write", || {
            calls += 1;
            let outcome = if calls < 4 {
                Err(Flaky(Failure::Transient))
            } else {
                Ok(calls)
            };
            async move { outcome }
        })
        .await;
        assert!(matches!(value, Ok(4)));
        assert!(
            health.not_running().is_empty(),
            "running again after success"
        );
        let refused = retry(&step, &stop, "write", || async {
            Err::<(), _>(Flaky(Failure::Record))
        })
        .await;
        assert!(matches!(refused, Err(Halt::Failed(_, Failure::Record))));
        stop.cancel();
        let stopped = retry(&step, &stop, "write", || async {
            Err::<(), _>(Flaky(Failure::Transient))
        })
        .await;
        assert!(matches!(stopped, Err(Halt::Stopped)));
        assert_eq!(
            health.not_running()[0].reason.as_deref(),
            Some("write: Transient")
        );
    }

    #[test]
    fn backoff_grows_to_its_bound_and_never_ends() {
        let mut backoff = Backoff::default();
        let delays: Vec<Duration> = (0..40).map(|_| backoff.next_delay()).collect();
        assert!(delays[0] >= RETRY_DELAY_MIN && delays[0] <= RETRY_DELAY_MIN * 2);
        // Jitter adds up to one delay on top of the bound.
        assert!(delays.iter().all(|d| *d <= RETRY_DELAY_MAX * 2));
        assert!(delays[39] >= RETRY_DELAY_MAX);
    }
}
