//! The broker a process talks to, and topic creation from the catalogue.

use super::embedded::EmbeddedBroker;
use crate::settings::KafkaSettings;
use crate::startup::StartupError;
use jivapay_schemas::TopicSpec;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::FutureProducer;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::ClientConfig;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// A reachable broker: external, or embedded in this process (then kept alive by this value).
#[derive(Clone)]
pub struct Broker {
    bootstrap: String,
    /// The process's one producer ([`Broker::shared_producer`]), made on first use. Declared
    /// before `embedded`, so that it is dropped before the embedded broker it talks to.
    producer: Arc<Mutex<Option<FutureProducer>>>,
    /// Cancelled when the shared producer breaks for good ([`Broker::producer_broken`]).
    producer_broken: CancellationToken,
    /// `client.id` of the shared producer: `jivapay-<component>`.
    client_id: String,
    embedded: Option<Arc<EmbeddedBroker>>,
    timeout: Duration,
}

impl Broker {
    /// Connects to the configured broker, or starts the embedded one when `may_embed`.
    pub async fn connect(
        settings: &KafkaSettings,
        may_embed: bool,
        component: &str,
    ) -> Result<Self, StartupError> {
        let timeout = Duration::from_secs(settings.connect_timeout_secs);
        let embedded = settings.brokers.trim() == "embedded";
        super::client_config::set_fetch_wait_max_ms(settings.fetch_wait_max_ms.unwrap_or(
            if embedded {
                super::client_config::EMBEDDED_FETCH_WAIT_MAX_MS
            } else {
                super::client_config::DEFAULT_FETCH_WAIT_MAX_MS
            },
        ));
        if embedded {
            if !may_embed {
                return Err(StartupError::EmbeddedBrokerNotHere {
                    component: component.into(),
                });
            }
            return Ok(Self {
                client_id: format!("jivapay-{component}"),
                ..Self::embedded(timeout)?
            });
        }
        let broker = Self {
            client_id: format!("jivapay-{component}"),
            ..Self::at(settings.brokers.trim(), None, timeout)
        };
        broker.check_reachable().await?;
        Ok(broker)
    }

    /// Starts an embedded broker (for `jivapay all` and tests).
    pub fn embedded(timeout: Duration) -> Result<Self, StartupError> {
        let embedded = EmbeddedBroker::start().map_err(StartupError::Kafka)?;
        let bootstrap = embedded.bootstrap_servers().to_owned();
        Ok(Self::at(&bootstrap, Some(Arc::new(embedded)), timeout))
    }

    /// An external broker at `bootstrap`, checked for reachability.
    pub async fn external(bootstrap: &str, timeout: Duration) -> Result<Self, StartupError> {
        let broker = Self::at(bootstrap, None, timeout);
        broker.check_reachable().await?;
        Ok(broker)
    }

    fn at(bootstrap: &str, embedded: Option<Arc<EmbeddedBroker>>, timeout: Duration) -> Self {
        Self {
            bootstrap: bootstrap.into(),
            producer: Arc::default(),
            producer_broken: CancellationToken::new(),
            client_id: "jivapay".into(),
            embedded,
            timeout,
        }
    }

    /// The producer every component of this process shares (librdkafka's advice: one per
    /// process). Made on first use; clones share one client, its batches and its threads.
    pub fn shared_producer(&self) -> Result<FutureProducer, rdkafka::error::KafkaError> {
        let mut slot = self.producer.lock().expect("producer lock");
        if let Some(producer) = slot.as_ref() {
            return Ok(producer.clone());
        }
        let producer: FutureProducer =
            super::client_config::producer_config(&self.bootstrap, &self.client_id).create()?;
        *slot = Some(producer.clone());
        Ok(producer)
    }

    /// Cancelled once a send of the shared producer failed in a way no retry mends
    /// ([`crate::failure::breaks_the_producer`]). Every process races its work against it and
    /// exits non-zero when it fires, so that its supervisor starts it again with a new producer:
    /// the HTTP edges would otherwise answer 503 for ever, and a loop with nothing to send
    /// would never notice.
    pub fn producer_broken(&self) -> CancellationToken {
        self.producer_broken.clone()
    }

    pub fn bootstrap_servers(&self) -> &str {
        &self.bootstrap
    }

    pub fn is_embedded(&self) -> bool {
        self.embedded.is_some()
    }

    /// The embedded broker, if this is one (tests use it to simulate outages).
    pub fn embedded_broker(&self) -> Option<&EmbeddedBroker> {
        self.embedded.as_deref()
    }

    fn metadata_client(&self) -> Result<BaseConsumer, StartupError> {
        ClientConfig::new()
            .set("bootstrap.servers", &self.bootstrap)
            .set("client.id", "jivapay-metadata")
            .create()
            .map_err(|e| StartupError::Kafka(e.to_string()))
    }

    /// Fetches cluster metadata once; fails with an actionable error when nobody answers.
    pub async fn check_reachable(&self) -> Result<(), StartupError> {
        let client = self.metadata_client()?;
        let timeout = self.timeout;
        let result = tokio::task::spawn_blocking(move || {
            let result = client
                .fetch_metadata(None, timeout)
                .map(|m| m.brokers().len());
            drop(client);
            result
        })
        .await
        .map_err(|e| StartupError::Kafka(e.to_string()))?;
        match result {
            Ok(n) if n > 0 => Ok(()),
            Ok(_) => Err(self.unreachable("no brokers in metadata".into())),
            Err(e) => Err(self.unreachable(e.to_string())),
        }
    }

    fn unreachable(&self, reason: String) -> StartupError {
        StartupError::BrokerUnreachable {
            brokers: self.bootstrap.clone(),
            reason,
        }
    }

    /// Partition count of every existing topic among `names` (absent ones are left out).
    pub async fn partition_counts(
        &self,
        names: &[&str],
    ) -> Result<Vec<(String, i32)>, StartupError> {
        let client = self.metadata_client()?;
        let timeout = self.timeout;
        let wanted: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        tokio::task::spawn_blocking(move || {
            let metadata = client
                .fetch_metadata(None, timeout)
                .map_err(|e| StartupError::Kafka(format!("metadata: {e}")))?;
            let counts = metadata
                .topics()
                .iter()
                .filter(|t| wanted.iter().any(|w| w == t.name()) && t.error().is_none())
                .filter(|t| !t.partitions().is_empty())
                .map(|t| (t.name().to_owned(), t.partitions().len() as i32))
                .collect();
            drop(client);
            Ok(counts)
        })
        .await
        .map_err(|e| StartupError::Kafka(e.to_string()))?
    }

    /// Creates every topic that does not exist yet, then checks that each has the catalogue's
    /// partition count. Safe to run any number of times, from any number of processes.
    pub async fn ensure_topics(&self, topics: &[TopicSpec]) -> Result<(), StartupError> {
        match &self.embedded {
            Some(embedded) => {
                for t in topics {
                    embedded
                        .create_topic(t.name, t.partitions)
                        .map_err(StartupError::Kafka)?;
                }
            }
            None => {
                // Only what is missing: a broker that already has the topics (another
                // process created them) is not asked to create anything.
                let names: Vec<&str> = topics.iter().map(|t| t.name).collect();
                let present = self.partition_counts(&names).await?;
                let missing: Vec<TopicSpec> = topics
                    .iter()
                    .filter(|t| !present.iter().any(|(name, _)| name == t.name))
                    .cloned()
                    .collect();
                if !missing.is_empty() {
                    self.create_with_admin_api(&missing).await?;
                }
            }
        }
        self.await_partition_counts(topics).await
    }

    async fn create_with_admin_api(&self, topics: &[TopicSpec]) -> Result<(), StartupError> {
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", &self.bootstrap)
            .set("client.id", "jivapay-admin")
            .create()
            .map_err(|e| StartupError::Kafka(e.to_string()))?;
        let lags: std::collections::HashMap<&str, Option<String>> = topics
            .iter()
            .map(|t| (t.name, t.min_compaction_lag_ms().map(|lag| lag.to_string())))
            .collect();
        let new_topics: Vec<NewTopic> = topics
            .iter()
            .map(|t| {
                let topic = NewTopic::new(t.name, t.partitions, TopicReplication::Fixed(1))
                    .set("cleanup.policy", t.cleanup.as_config());
                match &lags[t.name] {
                    Some(lag) => topic.set("min.compaction.lag.ms", lag),
                    None => topic,
                }
            })
            .collect();
        let options = AdminOptions::new().operation_timeout(Some(self.timeout));
        let results = admin
            .create_topics(&new_topics, &options)
            .await
            .map_err(|e| StartupError::Kafka(format!("create topics: {e}")))?;
        for result in results {
            match result {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((topic, code)) => {
                    return Err(StartupError::Kafka(format!("create topic {topic}: {code}")));
                }
            }
        }
        Ok(())
    }

    /// Metadata can lag behind creation; wait (bounded) until every topic shows up.
    async fn await_partition_counts(&self, topics: &[TopicSpec]) -> Result<(), StartupError> {
        let names: Vec<&str> = topics.iter().map(|t| t.name).collect();
        let deadline = Instant::now() + self.timeout;
        loop {
            let counts = self.partition_counts(&names).await?;
            for (name, actual) in &counts {
                let spec = topics
                    .iter()
                    .find(|t| t.name == name)
                    .expect("asked for it");
                if *actual != spec.partitions {
                    return Err(StartupError::PartitionMismatch {
                        topic: name.clone(),
                        expected: spec.partitions,
                        actual: *actual,
                    });
                }
            }
            if counts.len() == topics.len() {
                return Ok(());
            }
            if Instant::now() > deadline {
                let missing: Vec<_> = names
                    .iter()
                    .filter(|n| !counts.iter().any(|(c, _)| c == *n))
                    .collect();
                return Err(StartupError::Kafka(format!(
                    "topics not visible after creation: {missing:?}"
                )));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}
