//! Group commit for PostgreSQL: concurrent callers queue their requests and a worker runs one
//! statement for whatever has gathered, so a hot path pays one round trip per batch instead of
//! one per request.
//!
//! No request waits for a batch to fill: a worker takes what is queued the moment it is free,
//! so a lone request runs at once and batches grow only while a statement is in flight. The
//! queue is bounded, so a database that falls behind slows callers down instead of growing
//! memory. If a batch fails as a whole, its requests are run one by one, so one bad request
//! cannot fail the others.
//!
//! Written here rather than taken from a crate: the batch loaders on crates.io (`dataloader`)
//! answer by key from a map, which cannot say "the first of two equal keys was written, the
//! second is a repeat", and run one batch at a time.

use std::future::Future;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot, Mutex};

/// Runs one batch: answers per request, in the order given (exactly one per request).
pub trait Batch<Request, Answer>: Send + Sync + 'static {
    fn run(&self, requests: &[Request]) -> impl Future<Output = sqlx::Result<Vec<Answer>>> + Send;
}

/// How a [`Group`] works.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    /// Requests waiting for a worker before new ones wait to be queued.
    pub queue: usize,
    /// Most requests one batch takes.
    pub max_batch: usize,
    /// Workers at once: with two, one gathers its batch while the other's statement runs.
    pub workers: usize,
}

type Waiting<Request, Answer> = (Request, oneshot::Sender<sqlx::Result<Answer>>);

/// The queue of one kind of request; workers stop once it is dropped and drained.
pub struct Group<Request, Answer> {
    queue: mpsc::Sender<Waiting<Request, Answer>>,
}

impl<Request, Answer> Group<Request, Answer>
where
    Request: Send + Sync + 'static,
    Answer: Send + 'static,
{
    /// Starts `shape.workers` workers running `batch`.
    pub fn start(shape: Shape, batch: impl Batch<Request, Answer>) -> Self {
        let (queue, receiver) = mpsc::channel(shape.queue.max(1));
        let receiver = Arc::new(Mutex::new(receiver));
        let batch = Arc::new(batch);
        for _ in 0..shape.workers.max(1) {
            tokio::spawn(work(
                batch.clone(),
                receiver.clone(),
                shape.max_batch.max(1),
            ));
        }
        Self { queue }
    }

    /// Runs `request` in the next batch and returns its answer.
    pub async fn call(&self, request: Request) -> sqlx::Result<Answer> {
        let (done, answer) = oneshot::channel();
        self.queue
            .send((request, done))
            .await
            .map_err(|_| sqlx::Error::PoolClosed)?;
        answer.await.map_err(|_| sqlx::Error::PoolClosed)?
    }
}

async fn work<Request, Answer>(
    batch: Arc<impl Batch<Request, Answer>>,
    receiver: Arc<Mutex<mpsc::Receiver<Waiting<Request, Answer>>>>,
    max_batch: usize,
) {
    loop {
        let mut gathered = Vec::new();
        {
            let mut receiver = receiver.lock().await;
            if receiver.recv_many(&mut gathered, max_batch).await == 0 {
                return;
            }
        }
        let (requests, waiting): (Vec<Request>, Vec<_>) = gathered.into_iter().unzip();
        let count = requests.len();
        match batch.run(&requests).await {
            Ok(answers) if answers.len() == count => {
                for (done, answer) in waiting.into_iter().zip(answers) {
                    done.send(Ok(answer)).ok();
                }
            }
            Ok(answers) => {
                tracing::error!(
                    requests = count,
                    answers = answers.len(),
                    "a batch answered the wrong number of requests"
                );
                for done in waiting {
                    done.send(Err(sqlx::Error::Protocol("batch answer count".into())))
                        .ok();
                }
            }
            Err(e) if count > 1 => {
                tracing::warn!(error = %e, requests = count, "batch failed; running its requests one by one");
                for (request, done) in requests.iter().zip(waiting) {
                    let answer =
                        batch
                            .run(std::slice::from_ref(request))
                            .await
                            .and_then(|mut one| {
                                one.pop().ok_or_else(|| {
                                    sqlx::Error::Protocol("batch answer count".into())
                                })
                            });
                    done.send(answer).ok();
                }
            }
            Err(e) => {
                if let Some(done) = waiting.into_iter().next() {
                    done.send(Err(e)).ok();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Doubles numbers; refuses a batch holding 13; counts and sizes its calls.
    #[derive(Default)]
    struct Doubler {
        calls: AtomicUsize,
        largest: AtomicUsize,
    }

    impl Batch<u32, u32> for Arc<Doubler> {
        async fn run(&self, requests: &[u32]) -> sqlx::Result<Vec<u32>> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            self.largest.fetch_max(requests.len(), Ordering::SeqCst);
            // Long enough that requests gather while a batch is in flight.
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            if requests.contains(&13) {
                return Err(sqlx::Error::Protocol("thirteen".into()));
            }
            Ok(requests.iter().map(|n| n * 2).collect())
        }
    }

    const SHAPE: Shape = Shape {
        queue: 64,
        max_batch: 16,
        workers: 1,
    };

    #[tokio::test]
    async fn concurrent_requests_share_batches_and_each_gets_its_own_answer() {
        let doubler = Arc::new(Doubler::default());
        let group = Arc::new(Group::start(SHAPE, doubler.clone()));
        // From 100: none of them is the 13 the doubler refuses.
        let calls: Vec<_> = (100..200u32)
            .map(|n| {
                let group = group.clone();
                tokio::spawn(async move { (n, group.call(n).await.unwrap()) })
            })
            .collect();
        for call in calls {
            let (n, doubled) = call.await.unwrap();
            assert_eq!(doubled, n * 2);
        }
        let batches = doubler.calls.load(Ordering::SeqCst);
        assert!(batches < 100, "100 requests ran in {batches} batches");
        assert!(doubler.largest.load(Ordering::SeqCst) <= SHAPE.max_batch);
    }

    #[tokio::test]
    async fn a_failed_batch_fails_only_the_request_that_fails_alone() {
        let doubler = Arc::new(Doubler::default());
        let group = Arc::new(Group::start(SHAPE, doubler.clone()));
        // On the test's one thread the worker is parked first, so all three are queued
        // before it takes a batch: they share it, it fails, and each is run alone.
        let calls: Vec<_> = [12u32, 13, 14]
            .into_iter()
            .map(|n| {
                let group = group.clone();
                tokio::spawn(async move { group.call(n).await.ok() })
            })
            .collect();
        let mut answers = Vec::new();
        for call in calls {
            answers.push(call.await.unwrap());
        }
        assert_eq!(answers, vec![Some(24), None, Some(28)]);
        assert_eq!(doubler.calls.load(Ordering::SeqCst), 1 + 3);
    }

    #[tokio::test]
    async fn a_lone_request_does_not_wait_for_company() {
        let group = Group::start(SHAPE, Arc::new(Doubler::default()));
        let answer = tokio::time::timeout(std::time::Duration::from_secs(1), group.call(4)).await;
        assert_eq!(answer.unwrap().unwrap(), 8);
    }
}
