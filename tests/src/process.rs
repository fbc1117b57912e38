//! `jivapay all` run as its own process, the way a user starts it: the harness waits for the
//! addresses it prints and stops it with SIGTERM.

use crate::admin::{DATA_KEY, JWT_SECRET};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Running {
    pub child: Child,
    pub ingest: String,
    pub admin: String,
}

/// Runs `binary` with `args` and the test secrets, every inherited `JIVAPAY__` variable
/// removed and `env` added.
pub fn command(binary: &Path, args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(binary);
    for (key, _) in std::env::vars() {
        if key.starts_with("JIVAPAY__") {
            command.env_remove(key);
        }
    }
    command
        .args(args)
        .env("JIVAPAY__AUTH__JWT_SECRET", JWT_SECRET)
        .env("JIVAPAY__SECURITY__DATA_KEY", DATA_KEY)
        .env("JIVAPAY__LOG__FILTER", "warn")
        .envs(env.iter().copied());
    command
}

/// Starts `jivapay all` (on free ports unless `env` names them) and waits (bounded) until it
/// prints where it serves.
pub fn start_all(binary: &Path, env: &[(&str, &str)]) -> Running {
    let mut command = command(binary, &["all"], &[]);
    command
        .env("JIVAPAY__HTTP__INGEST_ADDR", "127.0.0.1:0")
        .env("JIVAPAY__HTTP__ADMIN_ADDR", "127.0.0.1:0")
        .envs(env.iter().copied());
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("jivapay starts");
    let stdout = child.stdout.take().expect("piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        // Read to the end even after the test stops listening, so the pipe never closes
        // under the running process.
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            tx.send(line).ok();
        }
    });
    let url_after = |line: &str, label: &str| -> Option<String> {
        let rest = line.trim().strip_prefix(label)?.trim();
        let url = rest.split_whitespace().next()?;
        Some(
            url.trim_end_matches('/')
                .trim_end_matches("/subjects")
                .trim_end_matches("/api")
                .to_owned(),
        )
    };
    let (mut ingest, mut admin) = (None, None);
    let deadline = Instant::now() + Duration::from_secs(60);
    while ingest.is_none() || admin.is_none() {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("jivapay all prints its addresses within a minute");
        ingest = ingest.or_else(|| url_after(&line, "gateway and payment pages"));
        admin = admin.or_else(|| url_after(&line, "management API"));
    }
    Running {
        child,
        ingest: ingest.expect("seen"),
        admin: admin.expect("seen"),
    }
}

impl Running {
    /// SIGTERM, then a bounded wait for a clean exit.
    pub fn terminate(mut self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        assert!(status.is_ok_and(|s| s.success()));
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                assert!(status.success(), "exit status {status}");
                return;
            }
            if Instant::now() > deadline {
                self.child.kill().ok();
                panic!("jivapay all did not stop within 20 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// A process left running by a failing test is killed, not leaked.
impl Drop for Running {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            self.child.kill().ok();
            self.child.wait().ok();
        }
    }
}

/// A free loopback port (bound and released: another process may take it in between, which
/// tests accept).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Waits (bounded) until `url` answers 200.
pub async fn wait_healthy(url: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(response) = reqwest::get(url).await {
            if response.status().is_success() {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "{url} not healthy within a minute"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// One component (`jivapay <args>`) in a process of its own, as a deployment runs it.
pub struct Component {
    binary: std::path::PathBuf,
    pub args: Vec<String>,
    env: Vec<(String, String)>,
    pub child: Child,
}

impl Component {
    pub fn spawn(binary: &Path, args: &[&str], env: &[(String, String)]) -> Self {
        let env_refs: Vec<(&str, &str)> =
            env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        // For a diagnosis: JIVAPAY_TEST_E2E_LOGS=<folder> keeps each component's log there
        // (appended across a restart).
        let log = std::env::var_os("JIVAPAY_TEST_E2E_LOGS").map(|dir| {
            let name = args.join("-");
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(Path::new(&dir).join(format!("{name}.log")))
                .expect("component log file")
        });
        let mut command = command(binary, args, &env_refs);
        if log.is_some() {
            command.env("JIVAPAY__LOG__FILTER", "info");
        }
        let child = command
            .stdout(Stdio::null())
            .stderr(log.map_or_else(Stdio::null, Stdio::from))
            .spawn()
            .unwrap();
        Self {
            binary: binary.to_owned(),
            args: args.iter().map(|a| a.to_string()).collect(),
            env: env.to_vec(),
            child,
        }
    }

    /// The command line after `jivapay`, as one string (`processor fraud`).
    pub fn name(&self) -> String {
        self.args.join(" ")
    }

    pub fn kill_hard(&mut self) {
        self.child.kill().ok(); // SIGKILL
        self.child.wait().ok();
    }

    pub fn restart(&mut self) {
        let args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        *self = Self::spawn(&self.binary.clone(), &args, &self.env.clone());
    }

    /// SIGTERM, then SIGKILL after 20 s.
    pub fn stop(&mut self) {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .ok();
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.child.try_wait().ok().flatten().is_none() {
            if Instant::now() > deadline {
                self.child.kill().ok();
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// A component left running by a failing test is killed, not leaked.
impl Drop for Component {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            self.child.kill().ok();
            self.child.wait().ok();
        }
    }
}

/// Migrates and seeds the demo data (`jivapay seed --demo`) into the cluster at `url`.
pub fn seed_demo(binary: &Path, url: &str) {
    let env = [
        ("JIVAPAY__DATABASE__URL", url),
        ("JIVAPAY__SEED__DEMO_PASSWORD", crate::demo::DEMO_PASSWORD),
    ];
    let seeded = command(binary, &["seed", "--demo"], &env)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(seeded.success(), "jivapay seed --demo");
}
