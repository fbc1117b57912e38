//! A black hole in the kernel: nftables rules that drop every TCP packet to or from some
//! loopback ports, so open connections stall (TCP retransmits into nothing) and new ones get no
//! answer to their SYN — a dead network path, on every connection a client opens. The fault
//! proxy covers only connections made to its own port; a broker that advertises its own
//! address (the embedded mock cluster) is reached past it, so its outage is held here instead.
//!
//! Needs root and the `nft` command (`scripts/test` installs Debian's `nftables`). Each hole is
//! a table of its own, named after this process, deleted when the value drops.

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

static HOLES: AtomicU32 = AtomicU32::new(0);

pub struct BlackHole {
    table: String,
}

impl BlackHole {
    /// Drops every TCP packet from or to `ports` on this machine until the value drops.
    pub fn hold(ports: &[u16]) -> Self {
        assert!(!ports.is_empty(), "a black hole needs a port");
        let n = HOLES.fetch_add(1, Ordering::SeqCst);
        let table = format!("jivapay_hole_{}_{n}", std::process::id());
        let set = ports
            .iter()
            .map(u16::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        // Loopback packets pass the output hook once each way: dropping there is enough.
        nft(&format!(
            "table inet {table} {{\n  chain out {{\n    type filter hook output priority 0;\n    \
             tcp dport {{ {set} }} drop\n    tcp sport {{ {set} }} drop\n  }}\n}}\n"
        ));
        Self { table }
    }
}

impl Drop for BlackHole {
    fn drop(&mut self) {
        nft(&format!("delete table inet {}\n", self.table));
    }
}

/// Runs an nftables script; panics with nft's own words if it refuses.
fn nft(script: &str) {
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("`nft` could not be started ({e}): scripts/test installs Debian's nftables")
        });
    child
        .stdin
        .take()
        .expect("piped")
        .write_all(script.as_bytes())
        .expect("nft reads its script");
    let out = child.wait_with_output().expect("nft ends");
    assert!(
        out.status.success(),
        "nft refused {script:?}: {} (black holes need root)",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::net::{TcpListener, TcpStream};
    use std::time::Duration;

    #[test]
    fn holds_open_and_new_connections_then_lets_them_through() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut client = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let (mut server, _) = listener.accept().unwrap();
        server
            .set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let mut byte = [0u8; 1];

        let hole = BlackHole::hold(&[port]);
        client.write_all(b"x").unwrap();
        assert!(server.read_exact(&mut byte).is_err(), "held in the hole");
        let new = TcpStream::connect_timeout(
            &format!("127.0.0.1:{port}").parse().unwrap(),
            Duration::from_millis(500),
        );
        assert!(new.is_err(), "a new connection gets no answer");

        drop(hole);
        server
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        server.read_exact(&mut byte).unwrap();
        assert_eq!(&byte, b"x", "what was sent arrives once the path is back");
    }
}
