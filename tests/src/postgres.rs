//! A PostgreSQL cluster of a test's own (started by `scripts/stack` in a folder and on a port
//! of its own), for tests that stop and start PostgreSQL under load: the stack's shared
//! cluster serves every other test at the same time. Stopped and removed when dropped.

use crate::process::free_port;
use std::path::PathBuf;
use std::process::Command;

pub struct OwnPostgres {
    /// `postgres://jivapay:jivapay@127.0.0.1:<port>/jivapay`.
    pub url: String,
    pub port: u16,
    dir: PathBuf,
}

fn stack() -> PathBuf {
    crate::package_file("../scripts/stack")
}

impl OwnPostgres {
    /// Initialises and starts a new cluster (a few seconds).
    pub fn start() -> Self {
        let port = free_port();
        let dir =
            std::env::temp_dir().join(format!("jivapay-pg-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("a folder for the cluster");
        let cluster = Self {
            url: format!("postgres://jivapay:jivapay@127.0.0.1:{port}/jivapay"),
            port,
            dir,
        };
        cluster.run("start");
        cluster
    }

    /// Starts the stopped cluster again (fast shutdown was clean: no recovery to wait for).
    pub fn resume(&self) {
        self.run("start");
    }

    /// Stops the cluster: every connection is closed, new ones are refused.
    pub fn stop(&self) {
        self.run("stop");
    }

    fn run(&self, action: &str) {
        let output = Command::new(stack())
            .args([action, "postgres"])
            .env("JIVAPAY_STACK_DIR", &self.dir)
            .env("JIVAPAY_STACK_PG_PORT", self.port.to_string())
            .output()
            .expect("scripts/stack runs");
        assert!(
            output.status.success(),
            "scripts/stack {action} postgres: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        Command::new(stack())
            .args(["stop", "postgres"])
            .env("JIVAPAY_STACK_DIR", &self.dir)
            .env("JIVAPAY_STACK_PG_PORT", self.port.to_string())
            .output()
            .ok();
        std::fs::remove_dir_all(&self.dir).ok();
    }
}
