//! The embedded broker: librdkafka's mock cluster, hosted by `jivapay all` and the test
//! harness. It speaks the real wire protocol on a loopback port, so other processes can use it
//! at its bootstrap address. It has no topic admin API (topics are created with its own call)
//! and no compaction.
//!
//! The mock cluster handle is not `Send`, so it lives on a thread of its own that takes
//! commands over a channel; dropping the `EmbeddedBroker` stops that thread and the cluster.

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::mocking::MockCluster;
use std::sync::mpsc;
use std::thread::JoinHandle;

enum Command {
    CreateTopic {
        name: String,
        partitions: i32,
        reply: mpsc::Sender<Result<(), String>>,
    },
    /// Takes the broker down (`false`) or brings it back (`true`): outage tests.
    SetUp {
        up: bool,
        reply: mpsc::Sender<Result<(), String>>,
    },
}

pub struct EmbeddedBroker {
    bootstrap: String,
    commands: Option<mpsc::Sender<Command>>,
    thread: Option<JoinHandle<()>>,
}

impl EmbeddedBroker {
    /// Starts a one-broker mock cluster on a free loopback port.
    pub fn start() -> Result<Self, String> {
        let (ready_tx, ready_rx) = mpsc::channel::<Result<String, String>>();
        let (commands, command_rx) = mpsc::channel::<Command>();
        let thread = std::thread::Builder::new()
            .name("embedded-broker".into())
            .spawn(move || {
                let cluster = match MockCluster::new(1) {
                    Ok(cluster) => cluster,
                    Err(e) => {
                        drop(ready_tx.send(Err(e.to_string())));
                        return;
                    }
                };
                drop(ready_tx.send(Ok(cluster.bootstrap_servers())));
                // Runs until every sender is gone, i.e. until the broker is dropped.
                for command in command_rx {
                    match command {
                        Command::CreateTopic {
                            name,
                            partitions,
                            reply,
                        } => {
                            let result = match cluster.create_topic(&name, partitions, 1) {
                                Ok(()) => Ok(()),
                                Err(KafkaError::MockCluster(
                                    RDKafkaErrorCode::TopicAlreadyExists,
                                )) => Ok(()),
                                Err(e) => Err(e.to_string()),
                            };
                            drop(reply.send(result));
                        }
                        Command::SetUp { up, reply } => {
                            let result = if up {
                                cluster.broker_up(1)
                            } else {
                                cluster.broker_down(1)
                            };
                            drop(reply.send(result.map_err(|e| e.to_string())));
                        }
                    }
                }
            })
            .map_err(|e| e.to_string())?;
        let bootstrap = ready_rx.recv().map_err(|e| e.to_string())??;
        Ok(Self {
            bootstrap,
            commands: Some(commands),
            thread: Some(thread),
        })
    }

    pub fn bootstrap_servers(&self) -> &str {
        &self.bootstrap
    }

    /// Creates a topic; an existing one is left as it is (the caller checks its partitions).
    pub fn create_topic(&self, name: &str, partitions: i32) -> Result<(), String> {
        let (reply, answer) = mpsc::channel();
        let command = Command::CreateTopic {
            name: name.to_owned(),
            partitions,
            reply,
        };
        self.commands
            .as_ref()
            .ok_or("embedded broker is stopped")?
            .send(command)
            .map_err(|_| "embedded broker thread is gone".to_string())?;
        answer
            .recv()
            .map_err(|_| "embedded broker thread is gone".to_string())?
    }

    /// Simulates an outage (`up = false`) and the recovery (`up = true`).
    pub fn set_up(&self, up: bool) -> Result<(), String> {
        let (reply, answer) = mpsc::channel();
        self.commands
            .as_ref()
            .ok_or("embedded broker is stopped")?
            .send(Command::SetUp { up, reply })
            .map_err(|_| "embedded broker thread is gone".to_string())?;
        answer
            .recv()
            .map_err(|_| "embedded broker thread is gone".to_string())?
    }
}

impl Drop for EmbeddedBroker {
    fn drop(&mut self) {
        self.commands.take();
        if let Some(thread) = self.thread.take() {
            drop(thread.join());
        }
    }
}
