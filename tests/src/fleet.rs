//! Every component in a process of its own, on one database and broker, under a supervisor
//! that starts a component again when it exits — as a deployment runs them. Each process
//! answers `/readyz` for itself: the gateway and the management API on their listeners, the
//! processors and sinks on an ops listener of their own.

use crate::process::{free_port, wait_healthy, Component};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The processors and sinks, as command lines after `jivapay`.
pub const STAGES: &[&str] = &[
    "processor fraud",
    "processor router",
    "processor trader-book",
    "processor commissions",
    "sink ledger",
    "sink projection",
    "sink callbacks",
    "sink dead-letters",
];

pub struct Fleet {
    members: Arc<Mutex<Vec<Component>>>,
    pub ingest: String,
    pub admin: String,
    /// The `/readyz` of every process.
    pub readiness: Vec<String>,
    stop: Arc<AtomicBool>,
    restarts: Arc<AtomicUsize>,
    watcher: Option<std::thread::JoinHandle<()>>,
}

impl Fleet {
    /// Starts the gateway, the management API and every stage of `binary` with `env` (the
    /// database and the broker; topics must exist and the database be migrated), and waits
    /// (bounded) until the two APIs answer.
    pub async fn start(binary: &Path, env: &[(&str, &str)]) -> Self {
        Self::start_with(binary, env, &[]).await
    }

    /// Like [`Fleet::start`], with the stages `more` as well: a second instance of a stage
    /// shares its work (its consumer group) with the first.
    pub async fn start_with(binary: &Path, env: &[(&str, &str)], more: &[&str]) -> Self {
        let address = |port: u16| format!("127.0.0.1:{port}");
        let (ingest_port, admin_port) = (free_port(), free_port());
        let mut shared: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        shared.push(("JIVAPAY__HTTP__INGEST_ADDR".into(), address(ingest_port)));
        shared.push(("JIVAPAY__HTTP__ADMIN_ADDR".into(), address(admin_port)));
        let ingest = format!("http://{}", address(ingest_port));
        let admin = format!("http://{}", address(admin_port));
        let mut readiness = vec![format!("{ingest}/readyz"), format!("{admin}/readyz")];
        let mut members = vec![
            Component::spawn(binary, &["ingest"], &shared),
            Component::spawn(binary, &["admin"], &shared),
        ];
        for stage in STAGES.iter().chain(more) {
            let ops = free_port();
            let mut own = shared.clone();
            own.push(("JIVAPAY__HTTP__OPS_ADDR".into(), address(ops)));
            readiness.push(format!("http://{}/readyz", address(ops)));
            let args: Vec<&str> = stage.split(' ').collect();
            members.push(Component::spawn(binary, &args, &own));
        }
        wait_healthy(&format!("{ingest}/healthz")).await;
        wait_healthy(&format!("{admin}/healthz")).await;
        let members = Arc::new(Mutex::new(members));
        let stop = Arc::new(AtomicBool::new(false));
        let restarts = Arc::new(AtomicUsize::new(0));
        let watcher = {
            let (members, stop, restarts) = (members.clone(), stop.clone(), restarts.clone());
            std::thread::spawn(move || supervise(&members, &stop, &restarts))
        };
        Self {
            members,
            ingest,
            admin,
            readiness,
            stop,
            restarts,
            watcher: Some(watcher),
        }
    }

    /// Stops every process (SIGTERM) and returns how often the supervisor had to start one
    /// again.
    pub fn terminate(mut self) -> usize {
        self.stop_watching();
        for member in self.members.lock().unwrap().iter_mut() {
            member.stop();
        }
        self.restarts.load(Ordering::SeqCst)
    }

    /// Sends `signal` (`STOP`, `CONT`, …) to the `nth` process (from 0) running `stage`.
    pub fn signal(&self, stage: &str, nth: usize, signal: &str) {
        let members = self.members.lock().unwrap();
        let member = members
            .iter()
            .filter(|m| m.name() == stage)
            .nth(nth)
            .unwrap_or_else(|| panic!("no process {nth} of {stage}"));
        let sent = std::process::Command::new("kill")
            .args([&format!("-{signal}"), &member.child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success(), "kill -{signal} {stage}");
    }

    fn stop_watching(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(watcher) = self.watcher.take() {
            watcher.join().ok();
        }
    }
}

/// Starts every member that exited again, until `stop`.
fn supervise(members: &Mutex<Vec<Component>>, stop: &AtomicBool, restarts: &AtomicUsize) {
    while !stop.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(200));
        for member in members.lock().unwrap().iter_mut() {
            if let Ok(Some(status)) = member.child.try_wait() {
                eprintln!(
                    "jivapay {} exited ({status}); the supervisor starts it again",
                    member.name()
                );
                restarts.fetch_add(1, Ordering::SeqCst);
                member.restart();
            }
        }
    }
}

/// A failing test stops the supervisor; each process is killed when its `Component` drops.
impl Drop for Fleet {
    fn drop(&mut self) {
        self.stop_watching();
    }
}
