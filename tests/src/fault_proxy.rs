//! A fault injector: a TCP proxy on a loopback port between the components and PostgreSQL or
//! the broker, which a test tells to cut every connection, to black-hole traffic for a while
//! (connections stay open, nothing passes either way, new ones are accepted and held — what a
//! dead network path looks like to a client), or to add latency. Real connections, real
//! timeouts: the components see what they would see in production.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

pub struct FaultProxy {
    /// `127.0.0.1:<port>` to point clients at.
    pub addr: String,
    controls: Arc<Controls>,
    task: tokio::task::JoinHandle<()>,
}

struct Controls {
    /// Bumped to cut every open connection.
    generation: watch::Sender<u64>,
    /// True while traffic is black-holed.
    blackholed: watch::Sender<bool>,
    latency_ms: AtomicU64,
}

impl FaultProxy {
    /// Starts a proxy to `target` (`host:port`) on a free loopback port.
    pub async fn start(target: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a proxy port");
        let addr = listener.local_addr().expect("bound").to_string();
        let controls = Arc::new(Controls {
            generation: watch::channel(0).0,
            blackholed: watch::channel(false).0,
            latency_ms: AtomicU64::new(0),
        });
        let target = target.to_owned();
        let shared = controls.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                tokio::spawn(relay(client, target.clone(), shared.clone()));
            }
        });
        Self {
            addr,
            controls,
            task,
        }
    }

    /// The proxy's port.
    pub fn port(&self) -> u16 {
        self.addr
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("a port")
    }

    /// Closes every open connection (new ones are let through).
    pub fn cut_all(&self) {
        self.controls.generation.send_modify(|g| *g += 1);
    }

    /// Passes nothing, either way, until [`restore`](Self::restore).
    pub fn blackhole(&self) {
        self.controls.blackholed.send_replace(true);
    }

    /// Lets traffic pass again after [`blackhole`](Self::blackhole).
    pub fn restore(&self) {
        self.controls.blackholed.send_replace(false);
    }

    /// Delays every chunk of data by `latency` (zero: none).
    pub fn set_latency(&self, latency: Duration) {
        self.controls
            .latency_ms
            .store(latency.as_millis() as u64, Ordering::Relaxed);
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
        self.cut_all();
    }
}

async fn relay(client: TcpStream, target: String, controls: Arc<Controls>) {
    let mut generation = controls.generation.subscribe();
    generation.borrow_and_update();
    // A new connection during a black hole is accepted and held, as a dead path would hold it.
    if wait_until_open(&controls).await.is_none() {
        return;
    }
    let Ok(server) = TcpStream::connect(&target).await else {
        return;
    };
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    let up = pump(client_read, server_write, controls.clone());
    let down = pump(server_read, client_write, controls.clone());
    tokio::select! {
        _ = up => {}
        _ = down => {}
        _ = generation.changed() => {} // cut: both halves dropped, both sides see the close
    }
}

/// Waits while traffic is black-holed; `None` if the proxy went away.
async fn wait_until_open(controls: &Controls) -> Option<()> {
    let mut blackholed = controls.blackholed.subscribe();
    blackholed.wait_for(|held| !held).await.ok().map(drop)
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    controls: Arc<Controls>,
) {
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        // Data read during a black hole is held until it ends (the sender's TCP would have
        // kept retransmitting it).
        if wait_until_open(&controls).await.is_none() {
            return;
        }
        let latency = controls.latency_ms.load(Ordering::Relaxed);
        if latency > 0 {
            tokio::time::sleep(Duration::from_millis(latency)).await;
        }
        if to.write_all(&buffer[..n]).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn echo_server() -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            loop {
                let (mut socket, _) = listener.accept().await.unwrap();
                tokio::spawn(async move {
                    let mut buffer = [0u8; 1024];
                    while let Ok(n) = socket.read(&mut buffer).await {
                        if n == 0 || socket.write_all(&buffer[..n]).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        addr
    }

    async fn round_trip(stream: &mut TcpStream, within: Duration) -> Option<Vec<u8>> {
        stream.write_all(b"ping").await.ok()?;
        let mut answer = [0u8; 4];
        tokio::time::timeout(within, stream.read_exact(&mut answer))
            .await
            .ok()?
            .ok()?;
        Some(answer.to_vec())
    }

    #[tokio::test]
    async fn passes_traffic_then_holds_it_then_cuts_it() {
        let proxy = FaultProxy::start(&echo_server().await).await;
        let mut stream = TcpStream::connect(&proxy.addr).await.unwrap();
        let second = Duration::from_secs(1);
        assert_eq!(round_trip(&mut stream, second).await.unwrap(), b"ping");

        proxy.blackhole();
        assert!(round_trip(&mut stream, Duration::from_millis(300))
            .await
            .is_none());
        proxy.restore();
        // What was held arrives once the path is back.
        let mut late = [0u8; 4];
        stream.read_exact(&mut late).await.unwrap();
        assert_eq!(&late, b"ping");

        proxy.set_latency(Duration::from_millis(200));
        let started = std::time::Instant::now();
        round_trip(&mut stream, second).await.unwrap();
        assert!(started.elapsed() >= Duration::from_millis(400));
        proxy.set_latency(Duration::ZERO);

        proxy.cut_all();
        let mut buffer = [0u8; 4];
        let closed = tokio::time::timeout(second, stream.read(&mut buffer)).await;
        assert!(matches!(closed, Ok(Ok(0)) | Ok(Err(_))), "{closed:?}");
        let mut again = TcpStream::connect(&proxy.addr).await.unwrap();
        assert_eq!(round_trip(&mut again, second).await.unwrap(), b"ping");
    }
}
