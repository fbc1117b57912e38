//! Supervision of a process's long-running loops (processors, sinks): a loop that ends while
//! the process is not stopping — a failure no retry mends — stops the whole process, which then
//! exits non-zero so that whatever supervises it (an orchestrator, systemd, the compose file's
//! restart policy) starts it again. Nothing runs on with a dead loop inside it.

use jivapay_platform::kafka::Broker;
use std::future::Future;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

#[derive(Default)]
pub struct Loops {
    running: JoinSet<(String, anyhow::Result<()>)>,
}

impl Loops {
    pub fn spawn(
        &mut self,
        name: impl Into<String>,
        work: impl Future<Output = anyhow::Result<()>> + Send + 'static,
    ) {
        let name = name.into();
        self.running.spawn(async move { (name, work.await) });
    }

    /// Fails like a loop when the broker's shared producer breaks for good (fenced, or
    /// librdkafka's fatal error): whatever of the process sends — HTTP edges, relays, loops —
    /// could never land anything again, so the process must end and be started anew.
    pub fn watch_producer(&mut self, broker: &Broker, stop: CancellationToken) {
        let broken = broker.producer_broken();
        self.spawn("shared producer", async move {
            tokio::select! {
                () = stop.cancelled() => Ok(()),
                () = broken.cancelled() => Err(anyhow::anyhow!(
                    "the producer was fenced or failed fatally; no send of this process can land"
                )),
            }
        });
    }

    /// Resolves when a loop ends before `stop` was cancelled, with why; never while every loop
    /// runs (nor when there are none).
    pub async fn failure(&mut self, stop: &CancellationToken) -> anyhow::Error {
        loop {
            let ended = match self.running.join_next().await {
                Some(ended) => ended,
                None => std::future::pending().await,
            };
            let (name, outcome) = match ended {
                Ok(done) => done,
                Err(e) => ("a loop".to_owned(), Err(anyhow::anyhow!("panicked: {e}"))),
            };
            match outcome {
                Ok(()) if stop.is_cancelled() => continue,
                Ok(()) => return anyhow::anyhow!("{name} stopped unexpectedly"),
                Err(e) => {
                    tracing::error!(component = %name, error = %e, "component failed; stopping the process");
                    return anyhow::anyhow!("{name} failed: {e:#}");
                }
            }
        }
    }

    /// Waits for every loop after `stop` was cancelled, logging the ones that failed.
    pub async fn join(mut self) {
        while let Some(ended) = self.running.join_next().await {
            if let Ok((name, Err(e))) = ended {
                tracing::error!(component = %name, error = %e, "a component stopped with an error");
            }
        }
    }
}
