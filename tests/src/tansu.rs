//! A Tansu broker of a test's own (fresh topics, nothing left by other tests), started from the
//! binary `scripts/stack` installs, on a free loopback port, with in-memory storage. Stopped
//! when dropped.

use crate::process::free_port;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct OwnTansu {
    pub bootstrap: String,
    child: Child,
    dir: PathBuf,
}

fn binary() -> PathBuf {
    std::env::var_os("JIVAPAY_STACK_TANSU_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME"))
                .join(".cache/jivapay/tools/bin/tansu")
        })
}

impl OwnTansu {
    pub fn start() -> Self {
        let port = free_port();
        Self::start_advertising(port, port)
    }

    /// Tansu listening on `port` and telling clients to connect to `advertised` (where a
    /// [`FaultProxy`](crate::fault_proxy::FaultProxy) to `port` listens, so that every
    /// connection, not only the bootstrap one, goes through it).
    pub fn start_advertising(port: u16, advertised: u16) -> Self {
        let url = format!("tcp://127.0.0.1:{port}");
        let advertised_url = format!("tcp://127.0.0.1:{advertised}");
        // Its own working folder: Tansu reads a `.env` from there.
        let dir =
            std::env::temp_dir().join(format!("jivapay-tansu-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("a folder for tansu");
        let log = std::env::var_os("JIVAPAY_TEST_TANSU_LOG").map(|path| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .expect("tansu log file")
        });
        let child = Command::new(binary())
            .args([
                "broker",
                "--cluster-id",
                "jivapay-test",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &advertised_url,
            ])
            .args(["--storage-engine", "memory://tansu/"])
            .current_dir(&dir)
            // For a diagnosis: JIVAPAY_TEST_TANSU_LOG=<file> keeps the broker's log there, at
            // the level of JIVAPAY_TEST_TANSU_RUST_LOG (default warn).
            .env(
                "RUST_LOG",
                std::env::var("JIVAPAY_TEST_TANSU_RUST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(log.as_ref().map_or_else(Stdio::null, |f| {
                Stdio::from(f.try_clone().expect("tansu log file"))
            }))
            .stderr(log.map_or_else(Stdio::null, Stdio::from))
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "tansu at {} does not start ({e}): run scripts/stack start tansu once",
                    binary().display()
                )
            });
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "tansu did not listen within 30 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Self {
            bootstrap: format!("127.0.0.1:{advertised}"),
            child,
            dir,
        }
    }
}

impl OwnTansu {
    /// The broker's process id (the benchmark measures its CPU).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for OwnTansu {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
        std::fs::remove_dir_all(&self.dir).ok();
    }
}
